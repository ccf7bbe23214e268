// Fixtures for the shim tests: builds the shim with make, a busybox rootfs from
// Debian's busybox-static, OCI bundles made with `runc spec` and edited, and
// per-container temp dirs that are torn down (runc delete -f, shim kill, rm).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const BUILD = path.join(REPO, 'build');
export const RUNC = '/usr/sbin/runc';
export const BUSYBOX = '/bin/busybox';

/** Runs make in src/shim (incremental), so tests always exercise the current source. */
export function buildShim(target = 'all'): string {
  execFileSync('make', ['-s', '-C', path.join(REPO, 'src', 'shim'), `OUT=${BUILD}`, target], { stdio: 'pipe' });
  const name = target === 'all' ? 'berth-shim' : `berth-shim-${target}`;
  return path.join(BUILD, name);
}

/** A read-only busybox rootfs shared by the bundles of one suite. */
export function makeRootfs(dir: string): string {
  const rootfs = path.join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    if (a === 'busybox') continue;
    fs.symlinkSync('busybox', path.join(rootfs, 'bin', a));
  }
  return rootfs;
}

export interface BundleOptions {
  args: string[];
  tty?: boolean;
  /** linux.cgroupsPath (default: runc's choice). */
  cgroupsPath?: string;
  /** linux.resources.memory.limit in bytes. */
  memoryLimit?: number;
}

/** An OCI bundle whose root is the shared rootfs (read-only). */
export function makeBundle(dir: string, rootfs: string, opts: BundleOptions): string {
  const bundle = path.join(dir, 'bundle');
  fs.mkdirSync(bundle, { recursive: true });
  execFileSync(RUNC, ['spec', '--bundle', bundle]);
  const specPath = path.join(bundle, 'config.json');
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8')) as {
    process: { terminal: boolean; args: string[]; env: string[] };
    root: { path: string; readonly: boolean };
    hostname?: string;
    linux: { cgroupsPath?: string; resources?: { memory?: { limit: number } } };
  };
  spec.process.terminal = !!opts.tty;
  spec.process.args = opts.args;
  spec.process.env = ['PATH=/bin', 'TERM=xterm'];
  spec.root = { path: rootfs, readonly: true };
  if (opts.cgroupsPath) spec.linux.cgroupsPath = opts.cgroupsPath;
  if (opts.memoryLimit) spec.linux.resources = { ...spec.linux.resources, memory: { limit: opts.memoryLimit } };
  fs.writeFileSync(specPath, JSON.stringify(spec, null, 2));
  return bundle;
}

let counter = 0;

/** One container's temp area: bundle, state dir, runc root, log. */
export class ContainerDirs {
  readonly id: string;
  readonly stateDir: string;
  readonly runtimeRoot: string;
  readonly logPath: string;
  bundle = '';

  constructor(readonly dir: string) {
    this.id = `berth-shim-test-${process.pid}-${++counter}`;
    this.stateDir = path.join(dir, 'state');
    this.runtimeRoot = path.join(dir, 'runc');
    this.logPath = path.join(dir, 'container.log');
  }

  static create(parent: string): ContainerDirs {
    return new ContainerDirs(fs.mkdtempSync(path.join(parent, 'c-')));
  }

  runc(...args: string[]): string {
    return execFileSync(RUNC, ['--root', this.runtimeRoot, ...args], { encoding: 'utf8' });
  }

  /** Kills the container and any shim left; removes the directory. */
  cleanup(): void {
    spawnSync(RUNC, ['--root', this.runtimeRoot, 'delete', '-f', this.id], { stdio: 'ignore' });
    const shimPidFile = path.join(this.stateDir, 'shim.pid');
    if (fs.existsSync(shimPidFile)) {
      const pid = Number.parseInt(fs.readFileSync(shimPidFile, 'utf8'), 10);
      if (pid > 0 && isShimProcess(pid, this.stateDir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * True if pid is a live (non-zombie) berth-shim process, and with stateDir,
 * the one serving that directory: pids wrap quickly (pid_max may be 32768),
 * so a bare pid may by now be someone else's shim.
 */
export function isShimProcess(pid: number, stateDir?: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!argv[0]?.includes('berth-shim') || procState(pid) === 'Z') return false;
    if (stateDir === undefined) return true;
    const i = argv.indexOf('--state-dir');
    return i >= 0 && argv[i + 1] === stateDir;
  } catch {
    return false;
  }
}

/** The one-letter state of a process (R, S, Z, ...), or null if gone. */
export function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/** Children of pid as [pid, state] pairs, from /proc. */
export function childrenOf(pid: number): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push([Number(name), fields[0] ?? '?']);
    } catch {
      // raced with exit
    }
  }
  return out;
}

export function tempRoot(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface CriRecord {
  time: string;
  stream: string;
  tag: string;
  content: string;
}

/** Parses a CRI log file strictly; throws on a malformed record. */
export function parseCriLog(text: string): CriRecord[] {
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error(`log does not end with a newline: ${JSON.stringify(text.slice(-80))}`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$/s.exec(line);
      if (!m) throw new Error(`malformed CRI log record: ${JSON.stringify(line)}`);
      return { time: m[1]!, stream: m[2]!, tag: m[3]!, content: m[4]! };
    });
}

/** Live berth-shim processes still waiting as spares (not yet given orders). */
export function waitingSpares(): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.includes('berth-shim') && argv.includes('--spare-socket') && procState(Number(p)) !== 'Z') out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}
