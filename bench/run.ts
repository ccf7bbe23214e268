// `make bench`: runs every benchmark (or the one named on the command line)
// and prints its figures next to the floor measured in the same run.
// Wall-clock figures are printed, never asserted.
import { active } from './common';
import { benchExec } from './exec';
import { benchPod } from './pod';
import { benchPull } from './pull';
import { benchRecords } from './records';
import { benchRpc } from './rpc';
import { benchShim } from './shim';
import { benchStats } from './cri_stats';
import { benchSteady } from './steady';

const BENCHES: Array<[string, () => Promise<void>]> = [
  ['rpc', benchRpc],
  ['pull', benchPull],
  ['pod', benchPod],
  ['records', benchRecords],
  ['exec', benchExec],
  ['shim', benchShim],
  ['stats', benchStats],
  ['steady', benchSteady],
];

async function main(): Promise<void> {
  const only = process.argv[2];
  if (only && !BENCHES.some(([name]) => name === only)) {
    throw new Error(`no benchmark "${only}"; there are: ${BENCHES.map(([n]) => n).join(', ')}`);
  }
  const t0 = Date.now();
  for (const [name, fn] of BENCHES) {
    if (only && only !== name) continue;
    const t = Date.now();
    process.stdout.write(`\n== ${name} ==\n`);
    await fn();
    process.stdout.write(`(${name}: ${((Date.now() - t) / 1000).toFixed(1)} s)\n`);
  }
  process.stdout.write(`\nall done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

// On Ctrl-C or SIGTERM, undo what the running benchmark set up before exiting.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${sig}: cleaning up\n`);
    void (active.cleanups?.run() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`bench crashed: ${err.stack ?? String(err)}\n`);
  void (active.cleanups?.run() ?? Promise.resolve()).finally(() => process.exit(1));
});

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  await active.cleanups?.run();
  process.exit(1);
});
