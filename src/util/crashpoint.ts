// Named crash points for crash-consistency tests (test-only).
//
// BERTH_CRASH_AT=<point> (e.g. BERTH_CRASH_AT=container-create:after-shim),
// read once when this module loads, makes berthd SIGKILL itself the moment
// it reaches that point, as a kill -9 or a power loss would. Unset (always,
// in production), crashPoint() costs one string comparison and does nothing.
// The points are listed in CRASH_POINTS; test/container/crash.test.ts drives them.

export const CRASH_POINTS = [
  'container-create:after-record',
  'container-create:after-snapshot',
  'container-create:after-mount',
  'container-create:after-bundle',
  'container-create:after-shim',
  'container-start:after-runtime-start',
  'container-remove:after-removing-record',
  'container-remove:after-runtime-delete',
  'container-remove:after-unmount',
  'pod-run:after-record',
  'pod-run:after-cgroup',
  'pod-run:after-pin',
  'pod-run:after-network',
  'pod-stop:after-containers-stopped',
  'pod-stop:after-resources',
  'pod-remove:after-containers-removed',
  'pod-remove:after-resources',
] as const;

export type CrashPointName = (typeof CRASH_POINTS)[number];

const armed: string = process.env.BERTH_CRASH_AT ?? '';

/** Kills berthd with SIGKILL, synchronously, when BERTH_CRASH_AT names this point. */
export function crashPoint(name: CrashPointName): void {
  if (armed !== name) return;
  // Synchronous write so the line is out before the process dies.
  try {
    process.stderr.write(`berthd: crash point ${name} reached (BERTH_CRASH_AT); killing myself with SIGKILL\n`);
  } catch {
    // nothing to do: we die anyway
  }
  process.kill(process.pid, 'SIGKILL');
}
