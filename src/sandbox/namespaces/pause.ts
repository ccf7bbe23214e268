// berth-pause, the init of a pod PID namespace that berth-pinns starts: its
// PID, whether it (and not a process that reused its PID) still runs, and
// killing it, which ends every process left in the pod PID namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
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

/** Kills berth-pause (and with it every process left in the pod PID namespace). */
export async function killPause(rec: PausedPod): Promise<void> {
  const pid = pausePidOf(rec);
  if (pid === undefined || !pauseAlive(rec, pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (pauseAlive(rec, pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
