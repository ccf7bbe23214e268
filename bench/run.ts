// `make bench`: runs every benchmark and prints its figures next to the floor
// measured in the same run. Wall-clock figures are printed, never asserted.
import { benchRpc } from './rpc';

async function main(): Promise<void> {
  const only = process.argv[2];
  const benches: Array<[string, () => Promise<void>]> = [['rpc', benchRpc]];
  for (const [name, fn] of benches) {
    if (only && only !== name) continue;
    process.stdout.write(`\n== ${name} ==\n`);
    await fn();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
