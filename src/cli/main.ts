#!/usr/bin/env node
// `berth`: a small operator tool that talks CRI to berthd, and to berthd's
// admin endpoint (<state>/admin.sock) for what CRI has no RPC for.
import * as net from 'node:net';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AdminClient } from '../admin/client';
import { CriClient } from '../client/cri_client';
import { defaultConfig } from '../config/config';
import { errnoCode, errorMessage } from '../errors';
import { callErrorLine } from './call_error';
import { humanSize, table } from './format';
import { exportCommand, importCommand } from './images';
import { PullView } from './pull';

export const USAGE = `usage: berth [--socket PATH] [--state DIR | --admin-socket PATH] COMMAND

commands:
  version                          runtime name and version
  info                             runtime status conditions, handlers and effective config
  pull REF                         pull an image through berthd, showing each layer's progress
  images ls [-q] [--json]          images berthd has: a table, ids only (-q), or JSON
  images import FILE|-             load images from an OCI layout or docker-save archive
                                   (plain, gzip or zstd compressed)
  images export [-o FILE] REF...   write images as an OCI layout archive (stdout without -o)
`;

const OPTIONS = {
  socket: { type: 'string' },
  state: { type: 'string' },
  'admin-socket': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
} as const satisfies ParseArgsConfig['options'];

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** A command line that does not parse: a one-line reason, the usage, exit 2. */
class UsageError extends Error {}

interface Command {
  /** Positional words naming it: ["images", "ls"]. */
  words: string[];
  /** Options it takes besides the global ones. */
  options: Array<keyof typeof OPTIONS>;
  /** Operands after the words: exact count, or at least `min`. */
  operands: { exact?: number; min?: number; name: string };
}

const GLOBAL: Array<keyof typeof OPTIONS> = ['socket', 'state', 'admin-socket', 'help'];
const COMMANDS: Command[] = [
  { words: ['version'], options: [], operands: { exact: 0, name: '' } },
  { words: ['info'], options: [], operands: { exact: 0, name: '' } },
  { words: ['pull'], options: [], operands: { exact: 1, name: 'REF' } },
  { words: ['images', 'ls'], options: ['quiet', 'json'], operands: { exact: 0, name: '' } },
  { words: ['images', 'import'], options: [], operands: { exact: 1, name: 'FILE|-' } },
  { words: ['images', 'export'], options: ['output'], operands: { min: 1, name: 'REF...' } },
];

export function parseCommandLine(argv: string[]): { command?: Command; values: Values; operands: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // node:util says e.g. "Unknown option '--bogus'" or "Option '-o, --output <value>' argument missing".
    throw new UsageError(errorMessage(err).split('. ')[0]);
  }
  const values = parsed.values as Values;
  const pos = parsed.positionals;
  if (values.help || pos.length === 0) return { values, operands: [] };
  const command = COMMANDS.find((c) => c.words.every((w, i) => pos[i] === w));
  if (!command) {
    const known = COMMANDS.filter((c) => c.words[0] === pos[0]).map((c) => c.words.join(' '));
    throw new UsageError(known.length ? `"${pos.slice(0, 2).join(' ')}": did you mean ${known.join(', ')}?` : `unknown command "${pos[0]}"`);
  }
  const name = command.words.join(' ');
  for (const [k, v] of Object.entries(values)) {
    const key = k as keyof typeof OPTIONS;
    if (v !== undefined && !GLOBAL.includes(key) && !command.options.includes(key)) throw new UsageError(`${name} takes no --${k}`);
  }
  const operands = pos.slice(command.words.length);
  const { exact, min, name: what } = command.operands;
  if (exact !== undefined && operands.length !== exact) {
    throw new UsageError(exact === 0 ? `${name} takes no arguments` : `${name} takes ${what}${operands.length > exact ? ' only' : ''}`);
  }
  if (min !== undefined && operands.length < min) throw new UsageError(`${name} needs ${what}`);
  return { command, values, operands };
}

/**
 * Whether berthd listens at `socket`; a one-line explanation when it does not,
 * so "berthd is not running" never surfaces as a gRPC or HTTP stack.
 */
async function notListening(socket: string, flagHint: string): Promise<string | undefined> {
  const code = await new Promise<string | undefined>((resolve) => {
    const s = net.connect(socket, () => {
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (err) => resolve(errnoCode(err) ?? errorMessage(err)));
  });
  if (code === undefined) return undefined;
  if (code === 'ENOENT') return `berthd is not running: no socket at ${socket} (${flagHint})`;
  if (code === 'ECONNREFUSED') return `berthd is not running: nothing listens on ${socket} (${flagHint})`;
  if (code === 'EACCES') return `permission denied on ${socket}: berth needs root`;
  return `cannot reach berthd at ${socket}: ${code}`;
}

async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`berth: ${err.message}\n${USAGE}`);
    return 2;
  }
  const { command, values, operands } = parsed;
  if (!command) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const defaults = defaultConfig();
  const socket = values.socket ?? defaults.socket;
  const adminSocket = values['admin-socket'] ?? path.join(values.state ?? defaults.state, 'admin.sock');
  const name = command.words.join(' ');
  const viaAdmin = name === 'pull' || name === 'images import' || name === 'images export';
  const target = viaAdmin ? adminSocket : socket;
  const down = await notListening(target, viaAdmin ? 'set --state DIR or --admin-socket PATH' : 'set --socket PATH');
  if (down) {
    process.stderr.write(`berth: ${down}\n`);
    return 1;
  }

  if (name === 'pull') {
    const view = new PullView((s) => process.stdout.write(s), process.stdout.isTTY === true, operands[0]);
    await new AdminClient(adminSocket).pull(operands[0], (e) => view.event(e));
    return 0;
  }
  if (name === 'images import') return importCommand(new AdminClient(adminSocket), operands[0]);
  if (name === 'images export') return exportCommand(new AdminClient(adminSocket), operands, values.output);

  const client = new CriClient(socket);
  try {
    return await criCommand(client, name, values);
  } catch (err) {
    process.stderr.write(`berth: ${callErrorLine(err, socket)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** The commands CRI answers: version, info, images ls. */
async function criCommand(client: CriClient, name: string, values: Values): Promise<number> {
  if (name === 'version') {
    const v = await client.runtime.Version({ version: '' }, { deadlineMs: 10_000 });
    process.stdout.write(`RuntimeName: ${v.runtimeName}\nRuntimeVersion: ${v.runtimeVersion}\nRuntimeApiVersion: ${v.runtimeApiVersion}\n`);
    return 0;
  }
  if (name === 'info') {
    const s = await client.runtime.Status({ verbose: true }, { deadlineMs: 10_000 });
    const info: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s.info)) {
      try {
        info[k] = JSON.parse(v);
      } catch {
        info[k] = v;
      }
    }
    process.stdout.write(JSON.stringify({ status: s.status, runtimeHandlers: s.runtimeHandlers, ...info }, null, 2) + '\n');
    return 0;
  }
  // images ls
  const res = await client.image.ListImages({}, { deadlineMs: 30_000 });
  if (values.json) {
    const out = res.images.map((i) => ({ id: i.id, repoTags: i.repoTags, repoDigests: i.repoDigests, size: Number(i.size), pinned: i.pinned }));
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return 0;
  }
  if (values.quiet) {
    process.stdout.write(res.images.map((i) => `${i.id}\n`).join(''));
    return 0;
  }
  const rows: string[][] = [];
  for (const i of res.images) {
    const tags = i.repoTags.length ? i.repoTags : ['<none>:<none>'];
    for (const t of tags) {
      const at = t.lastIndexOf(':');
      rows.push([t.slice(0, at), t.slice(at + 1), i.id.replace(/^sha256:/, '').slice(0, 12), humanSize(Number(i.size)), i.pinned ? 'pinned' : '']);
    }
  }
  rows.sort((a, b) => (a[0] + ':' + a[1] < b[0] + ':' + b[1] ? -1 : 1));
  process.stdout.write(table(['IMAGE', 'TAG', 'IMAGE ID', 'SIZE', 'PINNED'], rows));
  return 0;
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`berth: ${errorMessage(err)}\n`);
      process.exit(1);
    },
  );
}
