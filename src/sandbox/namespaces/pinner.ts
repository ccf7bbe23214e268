// Pinning pod namespaces (and the pod's /dev/shm) through the berth-pinns
// helper (src/pinns/pinns.c): pin, unpin, make a directory a private mount.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findPinns, mapArg, runPinns, type UserNamespaceMaps } from '../../runtime/idmap';

export { findPinns };

export interface PinRequest {
  /** Directory that receives net, ipc, uts, pid. */
  nsDir: string;
  net: boolean;
  ipc: boolean;
  uts: boolean;
  pid: boolean;
  /** A user namespace with these maps, owning the others (pinned as nsDir/user). */
  userns?: UserNamespaceMaps;
  hostname?: string;
  sysctls: Record<string, string>;
  /** cgroup.procs files the helper joins first, so berth-pause starts in the pod cgroup. */
  cgroupProcs: string[];
  shm?: { path: string; sizeBytes: number };
}

export interface PinResult {
  nsPaths: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  pausePid?: number;
}

/** Whether the directory exists and holds anything (a pinned namespace file, berth-pause's pid file). */
function hasEntries(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}

/** Whether something is mounted on `p`: it then sits on another device than its parent. */
function isMountPoint(p: string): boolean {
  try {
    return fs.statSync(p).dev !== fs.statSync(path.dirname(p)).dev;
  } catch {
    return false;
  }
}

export class NamespacePinner {
  constructor(private readonly binary: string | undefined = findPinns()) {}

  /** Creates and pins the namespaces; on failure the helper has undone its own work. */
  async pin(req: PinRequest): Promise<PinResult> {
    const args = ['pin', '--dir', req.nsDir];
    if (req.net) args.push('--net');
    if (req.ipc) args.push('--ipc');
    if (req.uts) args.push('--uts');
    if (req.pid) args.push('--pid');
    if (req.userns) args.push('--uid-map', mapArg(req.userns.uids), '--gid-map', mapArg(req.userns.gids));
    if (req.hostname) args.push('--hostname', req.hostname);
    for (const [k, v] of Object.entries(req.sysctls)) args.push('--sysctl', `${k}=${v}`);
    for (const f of req.cgroupProcs) args.push('--cgroup-procs', f);
    if (req.shm) args.push('--shm', req.shm.path, '--shm-size', String(req.shm.sizeBytes));
    const out = await runPinns(this.binary, args);
    const pid = /^pid=(\d+)$/m.exec(out);
    const nsPaths: PinResult['nsPaths'] = {};
    for (const ns of ['net', 'ipc', 'uts', 'pid'] as const) if (req[ns]) nsPaths[ns] = path.join(req.nsDir, ns);
    if (req.userns) nsPaths.user = path.join(req.nsDir, 'user');
    return {
      nsPaths,
      pausePid: pid ? Number(pid[1]) : undefined,
    };
  }

  /** Unmounts and deletes the ns files in nsDir and the shm mount; idempotent (no process is run when there is nothing to undo). */
  async unpin(nsDir: string, shmPath?: string): Promise<void> {
    if (!hasEntries(nsDir) && !(shmPath && isMountPoint(shmPath))) return;
    const args = ['unpin', '--dir', nsDir];
    if (shmPath) args.push('--shm', shmPath);
    await runPinns(this.binary, args);
  }

  /** Makes dir a private mount so binds under it stay out of other mount namespaces. */
  async makePrivate(dir: string): Promise<void> {
    await runPinns(this.binary, ['private', dir]);
  }
}
