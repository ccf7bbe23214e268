// Keeps the kernel's cgroup attach lock warm while containers are created.
//
// Why: since Linux 6.0 (unless cgroups are mounted with favordynmods), the
// first write to any cgroup.procs after a quiet spell waits out an RCU grace
// period before it gets the global cgroup_threadgroup_rwsem (10–15 ms here);
// a write within a grace period of the last one does not wait. `runc create`
// writes the container's init into cgroup.procs some 10 ms after it starts,
// so every lone pod start paid one whole grace period inside runc (a sleep,
// not work). While a create is in flight, berthd writes its own pid into the
// cgroup.procs of the cgroup it is in (a move to where it already is: nothing
// moves): the first write starts the grace period as CreateContainer begins,
// beside the record, snapshot, spec and shim start-up, and the later ones,
// every few ms, keep it passed until runc has written. The kernel looks the
// pid up before it takes the lock, so it must be a live process: ours.
// Measured on runc's own cgroup.procs write (strace -T): 11.7 ms median cold,
// 1.8 ms with the warmer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectCgroupLayout } from '../cgroups/cgroups';

/** How often the lock is re-taken while held: well inside one grace period. */
const INTERVAL_MS = 3;
/**
 * Above this many creates in flight the warmer pauses: their runcs' own
 * cgroup.procs writes come often enough to keep the lock warm, and the
 * warmer's would only cost CPU (50 pods 10 at a time: berthd 540-650 ms of
 * CPU with them, 490-540 without, the starts no slower).
 */
const MAX_WARMED_CREATES = 2;

/** The cgroup.procs file that holds this process, or undefined (no cgroupfs, not found). */
export type ProcsFileFinder = () => Promise<string | undefined>;

export class CgroupAttachWarmer {
  private holders = 0;
  private running = false;
  /** Set after a failed write or when no file was found: the warmer does nothing from then on. */
  private disabled = false;

  constructor(
    private readonly findProcsFile: ProcsFileFinder = ownCgroupProcsFile,
    private readonly pid = process.pid,
    private readonly intervalMs = INTERVAL_MS,
    private readonly maxHolders = MAX_WARMED_CREATES,
  ) {}

  /** Keeps the lock warm until the returned function is called (calling it again does nothing). */
  hold(): () => void {
    this.holders++;
    if (!this.running && !this.disabled) void this.loop();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holders--;
    };
  }

  private async loop(): Promise<void> {
    this.running = true;
    let fh: fs.promises.FileHandle | undefined;
    try {
      const file = await this.findProcsFile();
      if (!file) {
        this.disabled = true;
        return;
      }
      fh = await fs.promises.open(file, fs.constants.O_WRONLY);
      const line = Buffer.from(`${this.pid}\n`);
      while (this.holders > 0) {
        if (this.holders <= this.maxHolders) await fh.write(line, 0, line.length, null);
        await new Promise<void>((r) => setTimeout(r, this.intervalMs).unref());
      }
    } catch {
      // Only a speed-up: a host where the write is refused runs without it.
      this.disabled = true;
    } finally {
      this.running = false;
      await fh?.close().catch(() => undefined);
    }
    // A hold taken while the file was being closed.
    if (this.holders > 0 && !this.disabled) void this.loop();
  }
}

/**
 * This process's cgroup.procs: in the cgroup2 tree when one is mounted under
 * /sys/fs/cgroup (unified or hybrid), else in a v1 hierarchy listed in
 * /proc/self/cgroup. Read when a warming spell begins, so a process moved
 * meanwhile is written where it now is.
 */
export async function ownCgroupProcsFile(root = '/sys/fs/cgroup'): Promise<string | undefined> {
  const [self, mountinfo] = await Promise.all([
    fs.promises.readFile('/proc/self/cgroup', 'utf8'),
    fs.promises.readFile('/proc/self/mountinfo', 'utf8'),
  ]);
  const layout = detectCgroupLayout(root, mountinfo);
  const unified = layout.version === 2 ? layout.hierarchies[0].mountpoint : layout.hybridUnified;
  for (const line of self.split('\n')) {
    const m = /^\d+:([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    const [, controllers, cgroupPath] = m;
    const mountpoint = controllers === ''
      ? unified
      : layout.version === 1
        ? layout.hierarchies.find((h) => controllers.split(',').every((c) => h.controllers.includes(c)))?.mountpoint
        : undefined;
    if (mountpoint) return path.join(mountpoint, cgroupPath, 'cgroup.procs');
  }
  return undefined;
}
