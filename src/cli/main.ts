#!/usr/bin/env node
// `berth`: a small operator tool that talks CRI to berthd.
import { CriClient } from '../client/cri_client';
import { defaultConfig } from '../config/config';
import { errorMessage } from '../errors';

const USAGE = `usage: berth [--socket PATH] COMMAND

commands:
  version    runtime name and version
  info       runtime status conditions, handlers and effective config
`;

async function main(argv: string[]): Promise<number> {
  let socket = defaultConfig().socket;
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--socket') socket = argv[++i] ?? socket;
    else if (argv[i].startsWith('--socket=')) socket = argv[i].slice('--socket='.length);
    else args.push(argv[i]);
  }
  const cmd = args[0];
  if (!cmd || cmd === 'help' || cmd === '--help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
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
