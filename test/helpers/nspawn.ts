// A real systemd for tests: Debian's systemd booted as PID 1 of a container
// of its own (systemd-nspawn, from systemd-container) over a volatile copy of
// this machine's /usr, with the repository bound at the same path and no
// network of its own. Commands run inside with nsenter; the container is
// stopped by its nspawn PID.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');

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

export class SystemdContainer {
  private constructor(
    private readonly nspawn: ChildProcess,
    /** PID (on this host) of the container's systemd. */
    readonly init: number,
  ) {}

  static available(): boolean {
    return fs.existsSync('/usr/bin/systemd-nspawn') && fs.existsSync('/lib/systemd/systemd');
  }

  static async start(): Promise<SystemdContainer> {
    const nspawn = spawn(
      '/usr/bin/systemd-nspawn',
      // basic.target: systemd and its D-Bus socket without every service this machine has installed.
      ['--register=no', '--keep-unit', '--quiet', '--directory=/', '--volatile=yes', '--private-network', `--bind=${REPO}`, '--boot', '--', '--unit=basic.target'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    nspawn.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${stderr}`);
      const init = findSystemd(nspawn.pid ?? 0);
      if (init) {
        const c = new SystemdContainer(nspawn, init);
        if (c.run('test', ['-S', '/run/systemd/private']).status === 0) return c;
      }
      if (Date.now() > deadline) {
        nspawn.kill('SIGKILL');
        throw new Error(`systemd did not come up in the container: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Runs a command in the container's namespaces. */
  run(cmd: string, args: string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
    return spawnSync('nsenter', ['-t', String(this.init), '-a', cmd, ...args], { encoding: 'utf8', timeout: timeoutMs });
  }

  async stop(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.pid === undefined) return;
    const exited = new Promise((r) => this.nspawn.once('exit', r));
    // SIGTERM: nspawn asks the container's systemd to power off.
    process.kill(this.nspawn.pid, 'SIGTERM');
    const timer = setTimeout(() => this.nspawn.pid !== undefined && process.kill(this.nspawn.pid, 'SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}
