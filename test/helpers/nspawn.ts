// A real systemd for tests: Debian's systemd booted as PID 1 of a container
// of its own (systemd-nspawn, from systemd-container) over a volatile copy of
// this machine's /usr, with the repository bound at the same path and no
// network of its own (or the host's, to reach a registry on loopback).
// Commands run inside with nsenter; the container is stopped by its nspawn PID.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';

export const REPO = path.resolve(__dirname, '..', '..', '..');

/**
 * A fresh cgroup below this process's own in every hierarchy, for one
 * container: nspawn roots the container's cgroups at its own, and two
 * containers booted from the same cgroup would have their systemds share
 * one tree (nspawn's payload/ and supervisor/ included).
 */
function ownCgroupDirs(): string[] {
  const name = `berth-nspawn-${process.pid}-${randomBytes(4).toString('hex')}`;
  const layout = detectCgroupLayout();
  const mine = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean).map((l) => {
    const [, ctls, ...rest] = l.split(':');
    return { ctls: ctls ? ctls.split(',') : [], path: rest.join(':') };
  });
  const mounts: Array<{ mountpoint: string; controllers: string[] }> = [...layout.hierarchies];
  if (layout.version === 1 && layout.hybridUnified) mounts.push({ mountpoint: layout.hybridUnified, controllers: [] });
  const dirs: string[] = [];
  for (const m of mounts) {
    const unified = layout.version === 2 || m.controllers.length === 0;
    const own = mine.find((x) => (unified ? x.ctls.length === 0 : x.ctls.some((c) => m.controllers.includes(c))));
    if (!own) continue;
    const parent = path.join(m.mountpoint, own.path);
    const dir = path.join(parent, name);
    fs.mkdirSync(dir);
    // A v1 cpuset child starts with no CPUs: nothing could join it.
    for (const f of m.controllers.includes('cpuset') ? ['cpuset.cpus', 'cpuset.mems'] : []) fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(parent, f)));
    dirs.push(dir);
  }
  return dirs;
}

/** rmdir of a cgroup tree, deepest first; what is still busy stays. */
function removeCgroupTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  try {
    fs.rmdirSync(dir);
  } catch {
    // busy or gone
  }
}

/** The first descendant of `pid` named systemd (nspawn forks once more before it execs the container's init). */
function findSystemd(pid: number, depth = 3): number | undefined {
  if (depth === 0) return undefined;
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
  for (const c of children) {
    try {
      if (fs.readFileSync(`/proc/${c}/comm`, 'utf8').trim() === 'systemd') return c;
    } catch {
      continue; // gone meanwhile
    }
    const deeper = findSystemd(c, depth - 1);
    if (deeper) return deeper;
  }
  return undefined;
}

export interface SystemdContainerOptions {
  /** Share this machine's network namespace instead of a private one. */
  hostNetwork?: boolean;
  /**
   * On a cgroup v1 host nspawn mounts the controller hierarchies read-only,
   * so the container's systemd cannot use them. A host's systemd owns them:
   * remount them writable and re-execute systemd so it takes them up.
   */
  writableControllers?: boolean;
}

export class SystemdContainer {
  private constructor(
    private readonly nspawn: ChildProcess,
    /** The container's own cgroups (one per hierarchy), removed after it stops. */
    private readonly cgroups: string[],
    /** PID (on this host) of the container's systemd. */
    readonly init: number,
  ) {}

  static available(): boolean {
    return fs.existsSync('/usr/bin/systemd-nspawn') && fs.existsSync('/lib/systemd/systemd');
  }

  static async start(opts: SystemdContainerOptions = {}): Promise<SystemdContainer> {
    const cgroups = ownCgroupDirs();
    // The shell joins the container's own cgroups, then becomes nspawn.
    const join = cgroups.map((d) => `echo $$ > ${d}/cgroup.procs && `).join('');
    const nspawn = spawn(
      '/bin/sh',
      // basic.target: systemd and its D-Bus socket without every service this machine has installed;
      // @keyring: nspawn refuses session keyrings (EPERM), and runc makes one for every container;
      // systemd.firstboot=off: a volatile root has no locale or time zone, and firstboot would wait on the console for them.
      [
        '-c', `${join}exec "$@"`, 'sh', '/usr/bin/systemd-nspawn',
        '--register=no', '--keep-unit', '--quiet', '--directory=/', '--volatile=yes', ...(opts.hostNetwork ? [] : ['--private-network']),
        '--system-call-filter=@keyring', `--bind=${REPO}`, '--boot', '--', '--unit=basic.target', 'systemd.firstboot=off',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    nspawn.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${stderr}`);
      const init = findSystemd(nspawn.pid ?? 0);
      if (init) {
        const c = new SystemdContainer(nspawn, cgroups, init);
        if (c.run('test', ['-S', '/run/systemd/private']).status === 0) {
          if (opts.writableControllers) await c.makeControllersWritable();
          return c;
        }
      }
      if (Date.now() > deadline) {
        nspawn.kill('SIGKILL');
        for (const d of cgroups) removeCgroupTree(d);
        throw new Error(`systemd did not come up in the container: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async makeControllersWritable(): Promise<void> {
    const mounts = this.run('findmnt', ['-rn', '-t', 'cgroup', '-o', 'TARGET']).stdout.split('\n').filter(Boolean);
    if (mounts.length === 0) return; // cgroup v2: nspawn delegated the container's own tree already
    for (const m of mounts) {
      const r = this.run('mount', ['-o', 'remount,bind,rw', m]);
      if (r.status !== 0) throw new Error(`remount ${m} rw in the container: ${r.stderr}`);
    }
    const r = this.run('systemctl', ['daemon-reexec']);
    if (r.status !== 0) throw new Error(`systemctl daemon-reexec: ${r.stderr}`);
  }

  /** A path inside the container, as seen from this machine. */
  hostPath(p: string): string {
    return `/proc/${this.init}/root${p}`;
  }

  /** Runs a command in the container's namespaces. */
  run(cmd: string, args: string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
    return spawnSync('nsenter', ['-t', String(this.init), '-a', cmd, ...args], { encoding: 'utf8', timeout: timeoutMs });
  }

  async stop(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.pid === undefined) return this.removeCgroups();
    const exited = new Promise((r) => this.nspawn.once('exit', r));
    // SIGTERM: nspawn asks the container's systemd to power off.
    process.kill(this.nspawn.pid, 'SIGTERM');
    const timer = setTimeout(() => this.nspawn.pid !== undefined && process.kill(this.nspawn.pid, 'SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    this.removeCgroups();
  }

  private removeCgroups(): void {
    for (const d of this.cgroups) removeCgroupTree(d);
  }
}
