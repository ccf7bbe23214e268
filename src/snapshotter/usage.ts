// Disk usage of the snapshots, kept in memory so that ImageFsInfo and the
// stats RPCs never walk a tree. A committed layer never changes: it is
// measured once, when it is committed (or at start-up). A writable (active)
// layer changes under its container: a figure read when older than
// REFRESH_MS schedules a new walk of that one layer in the background (one
// walk at a time), so a figure is at most REFRESH_MS plus one caller's period
// old; containerd's snapshot syncer re-walks every 10 s too.
//
// A layer can tell it is unchanged: with an activity probe (the container
// service gives one: the CPU time of the container's cgroup), a stale
// layer whose probe reads as it did before its last walk is not walked again
// (no process that could write to it has run), its figure only marked
// current; it is walked anyway once QUIET_MAX_MS old, for writers from
// outside the container.
//
// The re-walks give the event loop a turn before each layer: a walk is
// synchronous (disk_usage.ts), and awaiting one that finished only runs
// microtasks, so without the turn the reader's own reply (ImageFsInfo,
// ListContainerStats) and every RPC behind it waited for all the stale layers.
import * as fsp from 'node:fs/promises';
import { setImmediate as loopTurn } from 'node:timers/promises';
import { diskUsage } from '../util/disk_usage';

/** A writable layer's figure older than this is re-measured after it is read. */
export const REFRESH_MS = 10_000;
/** A writable layer is walked at least this often, however quiet its probe says it was. */
export const QUIET_MAX_MS = 60_000;

/**
 * What has run in a writable layer's container so far (say, its CPU time),
 * read before each walk: the same value later means nothing wrote to the
 * layer in between. Undefined: unknown (the layer is walked).
 */
export type ActivityProbe = (key: string) => string | undefined;

export interface UsageFigure {
  bytes: bigint;
  inodes: bigint;
  /** Date.now() of the walk. */
  at: number;
}

interface Entry {
  figure?: UsageFigure;
  /** Re-measured when stale (an active snapshot's upper dir). */
  writable: boolean;
  /** Date.now() of the last walk (figure.at also moves when a quiet layer's figure is confirmed). */
  walkedAt: number;
  /** The activity probe's value just before the last walk. */
  activity?: string;
}

export class SnapshotUsageBook {
  private readonly entries = new Map<string, Entry>();
  private readonly queue = new Set<string>();
  private draining = false;
  private started?: Promise<void>;
  private activity: ActivityProbe = () => undefined;

  /** `dirOf`: what is measured for a key (undefined once the snapshot is gone). */
  constructor(private readonly dirOf: (key: string) => { dir: string; writable: boolean; withDir: boolean } | undefined) {}

  /** Sets how a writable layer tells it is unchanged (see ActivityProbe). */
  setActivityProbe(probe: ActivityProbe): void {
    this.activity = probe;
  }

  /** Measures the snapshots already there, in the background; figures read meanwhile wait for it. */
  start(keys: string[]): void {
    this.started = (async () => {
      for (const k of keys) await this.measure(k);
    })();
  }

  /** Measures one snapshot now (it was just committed or prepared). */
  async measure(key: string): Promise<void> {
    const what = this.dirOf(key);
    if (!what) {
      this.entries.delete(key);
      return;
    }
    const at = Date.now();
    const activity = what.writable ? this.activity(key) : undefined;
    let u: { bytes: bigint; inodes: bigint };
    try {
      u = await diskUsage(what.dir);
      if (what.withDir) {
        // The snapshot's own directory counts too.
        const st = await fsp.lstat(what.dir, { bigint: true });
        u = { bytes: u.bytes + st.blocks * 512n, inodes: u.inodes + 1n };
      }
    } catch {
      return; // removed meanwhile
    }
    // Removed (or replaced) while measured: do not bring it back.
    if (this.dirOf(key)?.dir !== what.dir) return;
    this.entries.set(key, { figure: { ...u, at }, writable: what.writable, walkedAt: at, activity });
  }

  forget(key: string): void {
    this.entries.delete(key);
    this.queue.delete(key);
  }

  /** The last figure of a snapshot (undefined when never measured); a stale writable one is re-measured after. */
  async of(key: string): Promise<UsageFigure | undefined> {
    await this.started;
    const e = this.entries.get(key);
    if (e) this.refreshIfStale(key, e);
    return e?.figure;
  }

  /** The sum over every snapshot; stale writable ones are re-measured after. */
  async total(): Promise<{ bytes: bigint; inodes: bigint }> {
    await this.started;
    let bytes = 0n;
    let inodes = 0n;
    for (const [key, e] of this.entries) {
      if (!e.figure) continue;
      bytes += e.figure.bytes;
      inodes += e.figure.inodes;
      this.refreshIfStale(key, e);
    }
    return { bytes, inodes };
  }

  private refreshIfStale(key: string, e: Entry): void {
    if (!e.writable) return;
    const now = Date.now();
    if (e.figure) {
      if (now - e.figure.at < REFRESH_MS) return;
      if (e.activity !== undefined && now - e.walkedAt < QUIET_MAX_MS && this.activity(key) === e.activity) {
        e.figure = { ...e.figure, at: now };
        return;
      }
    }
    this.queue.add(key);
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      for (const key of this.queue) {
        this.queue.delete(key);
        await loopTurn();
        await this.measure(key);
      }
    } finally {
      this.draining = false;
    }
  }
}
