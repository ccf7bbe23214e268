#!/usr/bin/env node
// `berth`: a small operator tool that talks CRI to berthd, and to berthd's
// admin endpoint (<state>/admin.sock) for what CRI has no RPC for.
import * as path from 'node:path';
import { CriClient } from '../client/cri_client';
import { defaultConfig } from '../config/config';
import { errorMessage } from '../errors';
import { imagesCommand } from './images';

const USAGE = `usage: berth [--socket PATH] [--state DIR | --admin-socket PATH] COMMAND

commands:
  version                          runtime name and version
  info                             runtime status conditions, handlers and effective config
  images ls                        images berthd has (CRI ListImages)
  images import FILE|-             load images from an OCI layout or docker-save archive
  images export [-o FILE] REF...   write images as an OCI layout archive (stdout without -o)
`;

async function main(argv: string[]): Promise<number> {
  const defaults = defaultConfig();
  let socket = defaults.socket;
  let state = defaults.state;
  let adminSocket: string | undefined;
  const args: string[] = [];
  const value = (flag: string, i: number): string | undefined => (argv[i] === flag ? argv[i + 1] : argv[i].startsWith(`${flag}=`) ? argv[i].slice(flag.length + 1) : undefined);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = value('--socket', i) ?? value('--state', i) ?? value('--admin-socket', i);
    if (v !== undefined) {
      if (a.startsWith('--socket')) socket = v;
      else if (a.startsWith('--state')) state = v;
      else adminSocket = v;
      if (!a.includes('=')) i++;
    } else args.push(a);
  }
  const cmd = args[0];
  if (!cmd || cmd === 'help' || cmd === '--help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'images' && args[1] !== 'ls') {
    return imagesCommand(args.slice(1), adminSocket ?? path.join(state, 'admin.sock'), USAGE);
  }
  const client = new CriClient(socket);
  try {
    switch (cmd) {
      case 'version': {
        const v = await client.runtime.Version({ version: '' }, { deadlineMs: 10_000 });
        process.stdout.write(
          `RuntimeName: ${v.runtimeName}\nRuntimeVersion: ${v.runtimeVersion}\nRuntimeApiVersion: ${v.runtimeApiVersion}\n`,
        );
        return 0;
      }
      case 'info': {
        const s = await client.runtime.Status({ verbose: true }, { deadlineMs: 10_000 });
        const info: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(s.info)) {
          try {
            info[k] = JSON.parse(v);
          } catch {
            info[k] = v;
          }
        }
        process.stdout.write(
          JSON.stringify({ status: s.status, runtimeHandlers: s.runtimeHandlers, ...info }, null, 2) + '\n',
        );
        return 0;
      }
      case 'images': {
        const res = await client.image.ListImages({}, { deadlineMs: 30_000 });
        const rows = res.images.map((i) => [i.id.slice(7, 19), i.repoTags.join(',') || '<none>', i.size, i.pinned ? 'pinned' : '']);
        process.stdout.write(['IMAGE ID\tNAMES\tSIZE\tPINNED', ...rows.map((r) => r.join('\t'))].join('\n') + '\n');
        return 0;
      }
      default:
        process.stderr.write(`berth: unknown command "${cmd}"\n${USAGE}`);
        return 2;
    }
  } finally {
    client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`berth: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
