// Pinned pod namespaces through the berth-pinns helper (src/pinns/pinns.c),
// and the mount-table queries that tell whether they are still there.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, failedPrecondition, internal } from '../errors';
import { resolveBinary } from '../runtime/handlers';
import { unescapeMountPath } from '../cgroups/cgroups';

/** Where berth-pinns is looked for: $BERTH_PINNS, the repo's build/, the install dir, then PATH. */
export function findPinns(): string | undefined {
  const candidates = [
    process.env.BERTH_PINNS,
    path.resolve(__dirname, '..', '..', '..', 'build', 'berth-pinns'),
    path.resolve(__dirname, '..', '..', 'build', 'berth-pinns'),
    '/usr/local/libexec/berth/berth-pinns',
    '/usr/libexec/berth/berth-pinns',
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  return resolveBinary('berth-pinns');
}

export interface PinRequest {
  /** Directory that receives net, ipc, uts, pid. */
  nsDir: string;
  net: boolean;
  ipc: boolean;
  uts: boolean;
  pid: boolean;
  hostname?: string;
  sysctls: Record<string, string>;
  /** cgroup.procs files the helper joins first, so berth-pause starts in the pod cgroup. */
  cgroupProcs: string[];
  shm?: { path: string; sizeBytes: number };
}

export interface PinResult {
  nsPaths: { net?: string; ipc?: string; uts?: string; pid?: string };
  pausePid?: number;
}

function run(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || errorMessage(err);
        reject(internal(why.replace(/^berth-pinns: /, '')));
      } else resolve(stdout);
    });
  });
}

export class NamespacePinner {
  constructor(private readonly binary: string | undefined = findPinns()) {}

  private bin(): string {
    if (!this.binary) {
      throw failedPrecondition(
        'the berth-pinns helper was not found (build it with `make`, install it in /usr/local/libexec/berth, or set BERTH_PINNS)',
      );
    }
    return this.binary;
  }

  /** Creates and pins the namespaces; on failure the helper has undone its own work. */
  async pin(req: PinRequest): Promise<PinResult> {
    const args = ['pin', '--dir', req.nsDir];
    if (req.net) args.push('--net');
    if (req.ipc) args.push('--ipc');
    if (req.uts) args.push('--uts');
    if (req.pid) args.push('--pid');
    if (req.hostname) args.push('--hostname', req.hostname);
    for (const [k, v] of Object.entries(req.sysctls)) args.push('--sysctl', `${k}=${v}`);
    for (const f of req.cgroupProcs) args.push('--cgroup-procs', f);
    if (req.shm) args.push('--shm', req.shm.path, '--shm-size', String(req.shm.sizeBytes));
    const out = await run(this.bin(), args);
    const pid = /^pid=(\d+)$/m.exec(out);
    const nsPaths: PinResult['nsPaths'] = {};
    for (const ns of ['net', 'ipc', 'uts', 'pid'] as const) if (req[ns]) nsPaths[ns] = path.join(req.nsDir, ns);
    return {
      nsPaths,
      pausePid: pid ? Number(pid[1]) : undefined,
    };
  }

  /** Unmounts and deletes the ns files in nsDir and the shm mount; idempotent. */
  async unpin(nsDir: string, shmPath?: string): Promise<void> {
    if (!fs.existsSync(nsDir) && !(shmPath && fs.existsSync(shmPath))) return;
    const args = ['unpin', '--dir', nsDir];
    if (shmPath) args.push('--shm', shmPath);
    await run(this.bin(), args);
  }

  /** Makes dir a private mount so binds under it stay out of other mount namespaces. */
  async makePrivate(dir: string): Promise<void> {
    await run(this.bin(), ['private', dir]);
  }
}

export interface MountInfoEntry {
  mountpoint: string;
  fstype: string;
  /** Optional fields, e.g. ["shared:1"] or ["master:3"]. */
  optional: string[];
  root: string;
}

export function readMountInfo(): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    out.push({ root: unescapeMountPath(left[3]), mountpoint: unescapeMountPath(left[4]), optional: left.slice(6), fstype: right[0] });
  }
  return out;
}

/** Mounts at or below dir. */
export function mountsUnder(dir: string, table = readMountInfo()): MountInfoEntry[] {
  const d = path.resolve(dir);
  return table.filter((m) => m.mountpoint === d || m.mountpoint.startsWith(d + '/'));
}

/** The mount that contains path (the longest mountpoint prefix; the last one when stacked). */
export function mountOf(p: string, table = readMountInfo()): MountInfoEntry | undefined {
  const target = path.resolve(p);
  let best: MountInfoEntry | undefined;
  for (const m of table) {
    if (target === m.mountpoint || target.startsWith(m.mountpoint === '/' ? '/' : m.mountpoint + '/')) {
      if (!best || m.mountpoint.length >= best.mountpoint.length) best = m;
    }
  }
  return best;
}

/** Whether file is an nsfs bind mount (a pinned namespace). */
export function isPinned(file: string, table = readMountInfo()): boolean {
  const f = path.resolve(file);
  return table.some((m) => m.mountpoint === f && m.fstype === 'nsfs');
}

/** The inode of a namespace file: equal inodes mean the same namespace. */
export function nsInode(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}
