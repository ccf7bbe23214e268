// Pinning pod namespaces (and the pod's /dev/shm) through the berth-pinns
// helper (src/pinns/pinns.c): pin, unpin, make a directory a private mount.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, failedPrecondition, internal } from '../../errors';
import { resolveBinary } from '../../runtime/handlers';

/** Where berth-pinns is looked for: $BERTH_PINNS, the repo's build/, the install dir, then PATH. */
export function findPinns(): string | undefined {
  const candidates = [
    process.env.BERTH_PINNS,
    path.resolve(__dirname, '..', '..', '..', '..', 'build', 'berth-pinns'),
    path.resolve(__dirname, '..', '..', '..', 'build', 'berth-pinns'),
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
