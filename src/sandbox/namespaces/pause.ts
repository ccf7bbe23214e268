// berth-pause, the init of a pod PID namespace that berth-pinns starts: its
// PID, whether it (and not a process that reused its PID) still runs, and
// killing it, which ends every process left in the pod PID namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { SandboxRecord } from '../record';
import { isPinned, nsInode } from './mounts';

type PausedPod = Pick<SandboxRecord, 'pausePid' | 'stateDir' | 'nsPaths'>;

/**
 * The PID of berth-pause: from the record, or from the pid file berth-pinns
 * leaves next to the namespaces (a berthd killed mid-RunPodSandbox never saw it).
 */
export function pausePidOf(rec: PausedPod): number | undefined {
  if (rec.pausePid !== undefined) return rec.pausePid;
  try {
    const n = Number(fs.readFileSync(path.join(rec.stateDir, 'ns', 'pause.pid'), 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function pauseAlive(rec: PausedPod, pid = pausePidOf(rec)): boolean {
  if (pid === undefined) return false;
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  if (/^\d+ \(.*\) Z/.test(stat)) return false;
  // A reused PID is not our pause: it must be in the pinned PID namespace, or at least be named berth-pause.
  const pidNs = rec.nsPaths.pid ?? path.join(rec.stateDir, 'ns', 'pid');
  const want = nsInode(pidNs);
  if (want !== undefined && isPinned(pidNs)) return nsInode(`/proc/${pid}/ns/pid`) === want;
  return stat.includes('(berth-pause)');
}

/** Whether the process whose /proc/<pid>/stat `fd` holds still runs: reads through it fail once that very process is gone. */
function runsByStat(fd: number, buf: Buffer): boolean {
  try {
    return !ZOMBIE.test(buf.toString('latin1', 0, fs.readSync(fd, buf, 0, buf.length, 0)));
  } catch {
    return false;
  }
}

/**
 * Kills berth-pause and waits until it is gone: its exit, as init of the pod
 * PID namespace, waits for every process left in that namespace to die.
 */
export async function killPause(rec: PausedPod): Promise<void> {
  const pid = pausePidOf(rec);
  if (pid === undefined) return;
  let fd: number;
  try {
    // Opened before the identity check and the kill, so the polls below read this process, whatever reuses its PID.
    fd = fs.openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return;
  }
  try {
    if (!pauseAlive(rec, pid)) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    // It dies within a scheduler slice or two: poll soon, then less often (one read of its stat each time).
    const buf = Buffer.alloc(512);
    const deadline = performance.now() + 5000;
    for (let waitMs = 1; runsByStat(fd, buf) && performance.now() < deadline; waitMs = Math.min(waitMs * 2, 10)) {
      await new Promise((r) => setTimeout(r, waitMs));
    }
  } finally {
    fs.closeSync(fd);
  }
}

const ZOMBIE = /^\d+ \(.*\) Z/s;
const NSFS_MAGIC = 0x6e736673;

/**
 * pauseAlive's identity check without reading the mount table: the process is
 * in the pod's pinned PID namespace (same device and inode), or, when that
 * file is no longer a namespace, is named berth-pause and not a zombie.
 */
function isOurPause(rec: PausedPod, pid: number): boolean {
  const pidNs = rec.nsPaths.pid ?? path.join(rec.stateDir, 'ns', 'pid');
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  if (ZOMBIE.test(stat)) return false;
  try {
    const want = fs.statSync(pidNs);
    const have = fs.statSync(`/proc/${pid}/ns/pid`);
    if (want.dev === have.dev && want.ino === have.ino) return true;
    if (fs.statfsSync(pidNs).type === NSFS_MAGIC) return false;
  } catch {
    // no pinned namespace file: judge by name
  }
  return stat.includes('(berth-pause)');
}

/** How old PauseWatch's reading of each tracked berth-pause's /proc stat may be when it answers. */
export const PAUSE_CHECK_MS = 1000;

interface WatchedPause {
  pid: number;
  /** /proc/<pid>/stat of the verified berth-pause, held open; undefined once it is known dead. */
  fd?: number;
  dead: boolean;
}


/**
 * Whether each pod's berth-pause runs, kept in memory so that listing pods
 * reads no /proc file. A pod's pause is verified once (pauseAlive: its PID
 * namespace or its name), and its /proc/<pid>/stat is kept open: reads through
 * that descriptor fail once that very process is gone, even when its PID has
 * been reused. A question finds every one read again when the last reading
 * is `periodMs` old (a dead pause may stay a zombie where nothing reaps it):
 * no timer wakes berthd while nobody asks. aliveNow() reads one pod's at
 * once. A death is final: the pod stays NOTREADY.
 */
export class PauseWatch {
  private readonly pods = new Map<string, WatchedPause>();
  private readonly buf = Buffer.alloc(1024);
  private changes = 0;
  /** performance.now() of the last checkAll(). */
  private checkedAt = -Infinity;

  constructor(private readonly periodMs = PAUSE_CHECK_MS) {}

  /**
   * Changes whenever what alive() answers may have changed (a pause found
   * dead, a pod watched or forgotten); a reading periodMs old is renewed first.
   */
  generation(): number {
    this.checkIfDue();
    return this.changes;
  }

  /** As of a reading at most periodMs old (the first question about a pod checks it now). */
  alive(rec: PausedPod & { id: string }): boolean {
    this.checkIfDue();
    return !this.watched(rec).dead;
  }

  /** Reads the pod's pause state now (without blocking the event loop). */
  async aliveNow(rec: PausedPod & { id: string }): Promise<boolean> {
    const w = this.watched(rec);
    if (w.dead || w.fd === undefined) return !w.dead;
    const fd = w.fd;
    const text = await new Promise<string | undefined>((resolve) =>
      fs.read(fd, Buffer.alloc(1024), 0, 1024, 0, (err, n, b) => resolve(err ? undefined : b.toString('latin1', 0, n))),
    );
    if (w.fd === fd && (text === undefined || ZOMBIE.test(text))) this.markDead(w);
    return !w.dead;
  }

  /** Stops watching a pod (stopped or removed: its record says NOTREADY). */
  forget(id: string): void {
    const w = this.pods.get(id);
    if (!w) return;
    this.closeFd(w);
    this.pods.delete(id);
    this.changes++;
  }

  /** Reads every watched pause now. */
  checkAll(): void {
    this.checkedAt = performance.now();
    for (const w of this.pods.values()) {
      if (w.fd === undefined) continue;
      let text: string | undefined;
      try {
        text = this.buf.toString('latin1', 0, fs.readSync(w.fd, this.buf, 0, this.buf.length, 0));
      } catch {
        text = undefined;
      }
      if (text === undefined || ZOMBIE.test(text)) this.markDead(w);
    }
  }

  close(): void {
    for (const id of [...this.pods.keys()]) this.forget(id);
  }

  private checkIfDue(): void {
    if (performance.now() - this.checkedAt >= this.periodMs) this.checkAll();
  }

  private watched(rec: PausedPod & { id: string }): WatchedPause {
    const pid = pausePidOf(rec);
    const known = this.pods.get(rec.id);
    if (known && known.pid === pid) return known;
    if (known) this.forget(rec.id);
    const w: WatchedPause = { pid: pid ?? 0, dead: true };
    if (pid !== undefined) {
      // Opened before the identity check: if this process died and its PID was
      // reused in between, the check fails or the next read through fd does.
      try {
        w.fd = fs.openSync(`/proc/${pid}/stat`, 'r');
        w.dead = false;
      } catch {
        w.fd = undefined;
      }
      if (!w.dead && !isOurPause(rec, pid)) this.markDead(w);
    }
    this.pods.set(rec.id, w);
    this.changes++;
    return w;
  }

  private markDead(w: WatchedPause): void {
    if (!w.dead) this.changes++;
    w.dead = true;
    this.closeFd(w);
  }

  private closeFd(w: WatchedPause): void {
    if (w.fd === undefined) return;
    try {
      fs.closeSync(w.fd);
    } catch {
      // already closed
    }
    w.fd = undefined;
  }
}
