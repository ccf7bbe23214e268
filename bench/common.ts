// Shared pieces of the benchmarks: a cleanup stack that also runs on
// SIGINT/SIGTERM, child-process helpers, /proc memory readers, a berthd with
// a registry holding a busybox image, and the output format (figure, floor,
// ratio).
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestBerthd } from '../test/helpers/berthd';
import { makeLayer, Pusher, TestRegistry } from '../test/helpers/registry';

/** A TCP port free on 127.0.0.1 right now. */
export { freePort } from '../test/helpers/registry';
import { fmt, summary } from './stats';

// ---------------------------------------------------------------- cleanup

type CleanupFn = () => Promise<unknown> | unknown;

/** A stack of undo steps; each runs even if an earlier one failed. */
export class Cleanups {
  private readonly steps: Array<{ what: string; fn: CleanupFn }> = [];

  add(what: string, fn: CleanupFn): void {
    this.steps.push({ what, fn });
  }

  async run(): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (!step) break;
      try {
        await step.fn();
      } catch (err) {
        process.stderr.write(`cleanup "${step.what}" failed: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  }
}

/** The cleanups of the benchmark running now; run.ts unwinds them on a signal. */
export const active = { cleanups: undefined as Cleanups | undefined };

/** Runs `body` with a fresh cleanup stack that is unwound afterwards, also on failure. */
export async function withCleanups(body: (c: Cleanups) => Promise<void>): Promise<void> {
  const c = new Cleanups();
  active.cleanups = c;
  try {
    await body(c);
  } finally {
    await c.run();
    active.cleanups = undefined;
  }
}

export function tempDir(c: Cleanups, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  c.add(`rm ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its exit. With `detachedStdio` its stdio is /dev/null, for
 * commands (runc run -d) whose children would otherwise hold our pipes open.
 */
export function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; detachedStdio?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: opts.detachedStdio ? 'ignore' : ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (child.stdin) {
      // A command that exits without reading its input must not crash us with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    }
  });
}

export async function mustRun(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = nowMs();
  await fn();
  return nowMs() - t;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- /proc memory

/** User + system CPU time of process `pid` (all its threads), or of its thread `thread` alone, so far, in ms. */
export function cpuMsOf(pid: number, thread?: number): number {
  try {
    const stat = fs.readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks (USER_HZ = 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM), or 0 if the process is gone. */
export function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size from /proc/PID/smaps_rollup in KiB, or 0 if the process is gone. */
export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Samples VmRSS of a process every `everyMs` and keeps the maximum. */
export class RssSampler {
  maxKb = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 20,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    this.maxKb = Math.max(this.maxKb, statusKb(this.pid, 'VmRSS'));
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.maxKb;
  }
}

export interface ProcInfo {
  pid: number;
  comm: string;
}

/** Processes named berth-* (shims, pause, pinns) whose command line or environment mentions `marker` (berthd's private dir). */
export function berthHelpers(marker: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const comm = fs.readFileSync(`/proc/${ent}/comm`, 'utf8').trim();
      if (!comm.startsWith('berth-')) continue;
      const cmdline = fs.readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      let mine = cmdline.includes(marker);
      if (!mine) {
        // berth-pause has no arguments: it belongs to us if its parent shim or pinner does, or its cwd/fds point into our dirs.
        const fds = fs.readdirSync(`/proc/${ent}/fd`).map((fd) => {
          try {
            return fs.readlinkSync(`/proc/${ent}/fd/${fd}`);
          } catch {
            return '';
          }
        });
        mine = fds.some((f) => f.includes(marker));
      }
      if (mine) out.push({ pid: Number(ent), comm });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The parent pid of a process (0 when it is gone). */
export function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Every process named berth-pause (pod infra); used with a before/after set difference. */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      if (fs.readFileSync(`/proc/${ent}/comm`, 'utf8').trim() === comm) out.push(Number(ent));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// ---------------------------------------------------------------- output

export const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** One latency row: median and p90, and the ratio of medians to the floor if one is given. */
export function latencyRow(label: string, samplesMs: number[], floorMs?: number[]): string {
  const s = summary(samplesMs);
  let line = `${label.padEnd(46)} n=${String(s.n).padStart(2)}  median ${fmt(s.median).padStart(7)} ms  p90 ${fmt(s.p90).padStart(7)} ms`;
  if (floorMs) {
    const f = summary(floorMs);
    line += `  ratio ${(s.median / f.median).toFixed(2)}x (p90 ${(s.p90 / f.p90).toFixed(2)}x)`;
  }
  return line;
}

export const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

/** "target ≤ 45 MiB: met" or "...: NOT met", for a figure an issue sets a bound on. */
export const target = (value: number, atMost: number, unit: string): string => `target ≤ ${atMost}${unit}: ${value <= atMost ? 'met' : 'NOT met'}`;

// ---------------------------------------------------------------- berthd + busybox image

/** Pod UIDs of this benchmark process: `bench-<pid>-<suffix>`, so what berth leaves behind can be told apart. */
export const benchUid = (suffix: string | number): string => `bench-${process.pid}-${suffix}`;

/** Where runc puts container cgroups on a hybrid host's extra cgroup2 mount (berth itself does not manage it). */
const HYBRID_UNIFIED_BERTH = '/sys/fs/cgroup/unified/berth';

/**
 * Counts and removes the (empty) pod cgroup directories of this process's pods
 * that berth left behind in the hybrid cgroup2 hierarchy; reported as a leak.
 */
export function sweepHybridPodCgroups(): void {
  let names: string[];
  try {
    names = fs.readdirSync(HYBRID_UNIFIED_BERTH).filter((n) => n.startsWith(`pod${benchUid('')}`));
  } catch {
    return;
  }
  if (names.length === 0) return;
  let removed = 0;
  for (const n of names) {
    try {
      fs.rmdirSync(path.join(HYBRID_UNIFIED_BERTH, n));
      removed++;
    } catch {
      // not empty (a process still in it): leave it
    }
  }
  out(`leak check: ${names.length} pod cgroup dirs left in ${HYBRID_UNIFIED_BERTH} after all pods were removed (bench removed ${removed})`);
}

const APPLETS = ['sh', 'sleep', 'true', 'echo', 'cat', 'ls'];
const ROOTFS_DIRS = ['proc', 'sys', 'dev', 'tmp', 'etc'];

export interface BerthBench {
  berthd: TestBerthd;
  registry: TestRegistry;
  pusher: Pusher;
  /** busybox (busybox-static), Cmd sleep 3600, already pulled into berthd. */
  image: string;
  pid: number;
}

/**
 * A registry on loopback and a berthd (log level info, as deployed), with
 * cleanups that remove every pod berthd still has, kill any helper process
 * left behind, and stop both.
 */
export async function startBerth(
  c: Cleanups,
  opts: {
    configToml?: string;
    pullBusybox?: boolean;
    metricsPort?: number;
    /** Serve /metrics (random loopback port, no event-loop gauge) for the per-phase figures (bench/phases.ts). */
    phaseMetrics?: boolean;
    nodeArgs?: string[];
  } = {},
): Promise<BerthBench> {
  const registry = await TestRegistry.start();
  c.add('stop registry', () => registry.stop());
  // berthd's state dir on a tmpfs, as /run/berth is on a deployed node (this machine's /run is plain ext4).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
  const stateDir = path.join(dir, 'state');
  mountTmpfs(c, stateDir);
  const pusher = new Pusher(registry.host);
  // Metrics stay off unless asked for (then on loopback; with the event-loop delay gauge for a given port).
  const metricsArgs = opts.metricsPort ? ['--set', 'metrics.event_loop_delay=true'] : opts.phaseMetrics ? [] : ['--no-metrics'];
  const berthd = await TestBerthd.start({
    dir,
    args: ['--log-level', 'info', ...metricsArgs],
    metrics: opts.metricsPort !== undefined || opts.phaseMetrics === true,
    metricsPort: opts.metricsPort,
    nodeArgs: opts.nodeArgs,
    configToml: opts.configToml ?? '[cni]\nconf_dir = "/nonexistent-berth-bench-cni"\n',
  });
  const pid = berthd.proc?.pid ?? 0;
  c.add('stop berthd', async () => {
    await berthd.stop();
    // Anything berthd left running (it should have left nothing once its pods are removed).
    const left = berthHelpers(berthd.dir);
    for (const p of left) {
      process.stderr.write(`bench: killing leftover ${p.comm} ${p.pid}\n`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (left.length > 0) await sleep(200);
    await unmountUnder(berthd.dir, stateDir);
    const runcRoot = path.join(berthd.state, 'runtime');
    if (fs.existsSync(runcRoot)) {
      for (const rt of fs.readdirSync(runcRoot)) {
        const bin = rt === 'crun' ? 'crun' : 'runc';
        const list = await run(bin, ['--root', path.join(runcRoot, rt), 'list', '-q']);
        for (const id of list.stdout.split('\n').filter(Boolean)) {
          process.stderr.write(`bench: deleting leftover ${rt} container ${id}\n`);
          await run(bin, ['--root', path.join(runcRoot, rt), 'delete', '-f', id]);
        }
      }
    }
    await unmountUnder(berthd.dir, stateDir);
    sweepHybridPodCgroups();
  });
  c.add('remove pods', () => removeAllPods(berthd));
  const bench: BerthBench = { berthd, registry, pusher, image: `${registry.host}/bench/busybox:1`, pid };
  const files: Record<string, Buffer | string | { symlink: string } | { copyOf: string } | { dir: true }> = {
    'bin/busybox': { copyOf: '/bin/busybox' },
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
    'etc/group': 'root:x:0:\n',
  };
  for (const a of APPLETS) files[`bin/${a}`] = { symlink: 'busybox' };
  // The mount points every real base image has (and the floor's rootfs, busyboxRootfs, has too).
  for (const d of ROOTFS_DIRS) files[d] = { dir: true };
  await pusher.pushImage('bench/busybox', '1', {
    layers: [makeLayer(files)],
    config: { Env: ['PATH=/bin'], Cmd: ['sleep', '3600'] },
  });
  if (opts.pullBusybox ?? true) await berthd.cri.image.PullImage({ image: { image: bench.image } });
  return bench;
}

export async function removeAllPods(berthd: TestBerthd): Promise<void> {
  if (!berthd.client) return;
  const pods = await berthd.cri.runtime.ListPodSandbox({});
  for (const p of pods.items) {
    await berthd.cri.runtime.StopPodSandbox({ podSandboxId: p.id });
    await berthd.cri.runtime.RemovePodSandbox({ podSandboxId: p.id });
  }
}

/**
 * A tmpfs at `dir` (made if missing), where a deployed node has one: /run.
 * Its cleanup unmounts it and removes everything under the directory's parent.
 */
export function mountTmpfs(c: Cleanups, dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=512m', 'berth-bench', dir]);
  c.add(`unmount ${dir}`, async () => {
    await run('umount', ['-l', dir]);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  });
}

/** Lazily unmounts everything mounted at or below `dir`, deepest first (but `keep`, which its owner unmounts). */
export async function unmountUnder(dir: string, keep?: string): Promise<void> {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && m !== keep && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    process.stderr.write(`bench: unmounting leftover ${m}\n`);
    await run('umount', ['-l', m]);
  }
}

/** A busybox rootfs (static binary + applet links) for bare-runc floors. */
export function busyboxRootfs(dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const d of ROOTFS_DIRS) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
}

/**
 * A bare-runc floor: an OCI bundle of the busybox rootfs made with `runc
 * spec`, running `sleep 3600`, with runc state in its own --root.
 */
export class RuncFloor {
  readonly root: string;
  readonly bundle: string;
  private readonly ids = new Set<string>();

  constructor(c: Cleanups, base: string) {
    // runc's state on a tmpfs, as its default /run/runc is on a deployed node.
    this.root = path.join(base, 'run', 'runc-root');
    this.bundle = path.join(base, 'bundle');
    mountTmpfs(c, this.root);
    fs.mkdirSync(this.bundle, { recursive: true });
    busyboxRootfs(path.join(this.bundle, 'rootfs'));
    c.add('delete runc floor containers', async () => {
      for (const id of this.ids) await run('runc', ['--root', this.root, 'delete', '-f', id]);
    });
  }

  async init(): Promise<void> {
    await mustRun('runc', ['spec', '--bundle', this.bundle]);
    this.setNetns(undefined);
  }

  /** Points the spec's network namespace at a path (or back to a new one). */
  setNetns(netnsPath: string | undefined): void {
    const file = path.join(this.bundle, 'config.json');
    const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      process: { terminal: boolean; args: string[] };
      linux: { namespaces: Array<{ type: string; path?: string }> };
    };
    spec.process.terminal = false;
    spec.process.args = ['sleep', '3600'];
    spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', ...(netnsPath ? { path: netnsPath } : {}) } : n));
    fs.writeFileSync(file, JSON.stringify(spec));
  }

  async start(id: string): Promise<void> {
    this.ids.add(id);
    await mustRun('runc', ['--root', this.root, 'run', '-d', '--bundle', this.bundle, id], { detachedStdio: true });
  }

  async exec(id: string, args: string[]): Promise<void> {
    await mustRun('runc', ['--root', this.root, 'exec', id, ...args], { detachedStdio: true });
  }

  async delete(id: string): Promise<void> {
    await mustRun('runc', ['--root', this.root, 'delete', '-f', id]);
    this.ids.delete(id);
  }
}
