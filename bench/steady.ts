// The node's steady state: N running pods (one busybox container each, host
// network) while a client replays a default kubelet's (1.32) steady-state CRI
// traffic for a while. Prints berthd's CPU, every RPC's latency, one PLEG
// relist's duration, berthd's event-loop delay (read from its own /metrics)
// and the memory per pod, each next to a floor measured in the same run:
// latencies next to a bare grpc-js Version round trip, CPU and event-loop
// delay next to berthd idle (same pods, no polling) over a window as long.
//
// STEADY_PODS (or `node dist/bench/run.js steady 250`): pods; by default one
// run with 110, then one with 250 and how the figures grew.
// STEADY_SECONDS: length of the idle and of the polling window, default 60;
// STEADY_SCALE_SECONDS those of the 250-pod run, default 30 (or less).
// STEADY_CPU_PROF=DIR: run berthd under `node --cpu-prof` and write its
// profile into DIR when it stops.
// STEADY_LOOP_DELAY=0: berthd without the event-loop delay gauge (its 10 ms
// timer costs about 0.5 % of a core here), /metrics still served as deployed:
// CPU as deployed, no event-loop figures.
// STEADY_WARMUP_SECONDS: how long the kubelet's traffic runs before the
// polling window (default 0: one pass of every loop).
// STEADY_NODE_ARGS="--flag ...": more node flags for berthd, after the
// deployed ones (deploy/node-flags), to compare V8 settings in one tree.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadCri } from '../src/proto';
import type { PodSandboxConfig } from '../src/gen/runtime/v1/PodSandboxConfig';
import type { RuntimeServiceClient } from '../src/gen/runtime/v1/RuntimeService';
import type { ImageServiceClient } from '../src/gen/runtime/v1/ImageService';
import {
  benchUid,
  type BerthBench,
  type Cleanups,
  freePort,
  mib,
  nowMs,
  out,
  sleep,
  startBerth,
  target,
  tempDir,
  withCleanups,
} from './common';
import { floorServer } from './rpc';
import { berthPssKb, cpuSeconds, eventLoopDelay, gcFigures, gcLine, type GcFigures, monotonicUs } from './steady_probes';
import { berthdNodeFlags } from '../test/helpers/berthd';
import { fmt, percentile } from './stats';

const PARALLEL = 10;
const FLOOR_SAMPLES = 300;
/** The stats RPCs, whose p90 target is 50 ms (every other RPC's is 20 ms). */
const STATS_RPCS = new Set(['ListContainerStats']);

// ---------------------------------------------------------------- clients

type Unary = (req: unknown) => Promise<unknown>;

/**
 * One gRPC connection per client (grpc-js would otherwise share one
 * subchannel between clients of the same target), as the kubelet has one for
 * the runtime and one for the image service.
 */
type ClientCtor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => grpc.Client;

function connect<C extends grpc.Client>(ctor: ClientCtor, socket: string): { client: C; call: (m: string) => Unary } {
  const client = new ctor(`unix://${socket}`, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  }) as unknown as C;
  const call =
    (method: string): Unary =>
    (req) =>
      new Promise((resolve, reject) => {
        const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
        fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (err: grpc.ServiceError | null, res: unknown) =>
          err ? reject(err) : resolve(res),
        );
      });
  return { client, call };
}

// ---------------------------------------------------------------- pods

function podConfig(logRoot: string, n: number): PodSandboxConfig {
  return {
    metadata: { name: `steady${n}`, namespace: 'bench', uid: benchUid(`steady${n}`), attempt: 0 },
    hostname: `steady${n}`,
    logDirectory: path.join(logRoot, `pod${n}`),
    labels: { app: 'steady', n: String(n) },
    // As a kubelet sends it for a pod without shareProcessNamespace: a PID
    // namespace per container, so berth runs no berth-pause for it.
    linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

async function startPod(b: BerthBench, logRoot: string, n: number): Promise<string> {
  const rt = b.berthd.cri.runtime;
  const config = podConfig(logRoot, n);
  const { podSandboxId } = await rt.RunPodSandbox({ config });
  const { containerId } = await rt.CreateContainer({
    podSandboxId,
    config: {
      metadata: { name: 'sleep' },
      image: { image: b.image },
      command: ['sleep', '3600'],
      logPath: 'sleep.log',
      labels: { app: 'steady' },
      linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
    },
    sandboxConfig: config,
  });
  await rt.StartContainer({ containerId });
  return podSandboxId;
}

// ---------------------------------------------------------------- the kubelet's traffic

/** One RPC of the replay: when (ms after the window began), on which connection, which method. */
interface CallRecord {
  atMs: number;
  image: boolean;
  method: string;
}

class Samples {
  readonly byRpc = new Map<string, number[]>();
  readonly relist: number[] = [];
  /** When each relist began (ms after the window began), beside `relist`. */
  readonly relistAt: number[] = [];
  /** When each 10 s stats and log-manager pass began (ms after the window began). */
  readonly burstAt: number[] = [];
  /** Every call in order, to replay the same calls at the same times against the floor server. */
  readonly calls: CallRecord[] = [];
  errors = 0;

  add(name: string, ms: number): void {
    let list = this.byRpc.get(name);
    if (!list) this.byRpc.set(name, (list = []));
    list.push(ms);
  }
}

/**
 * A default kubelet's steady-state CRI calls, loop by loop (each loop's calls
 * sequential, loops concurrent, each loop waiting its period after finishing
 * as wait.Until does), until `endAt`.
 */
async function replayKubelet(rtCall: (m: string) => Unary, imCall: (m: string) => Unary, endAt: number, s: Samples): Promise<void> {
  const t0 = nowMs();
  const recorded =
    (image: boolean, call: (m: string) => Unary) =>
    (method: string): Unary =>
    (req) => {
      s.calls.push({ atMs: nowMs() - t0, image, method });
      return call(method)(req);
    };
  const rt = recorded(false, rtCall);
  const im = recorded(true, imCall);
  const timed = async (name: string, fn: Unary, req: unknown): Promise<unknown> => {
    const t = nowMs();
    try {
      return await fn(req);
    } catch (err) {
      s.errors++;
      process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      return undefined;
    } finally {
      s.add(name, nowMs() - t);
    }
  };
  const listPods = (name: string, filter: unknown): Promise<unknown> => timed(name, rt('ListPodSandbox'), { filter });
  const listContainers = (name: string, filter: unknown): Promise<unknown> => timed(name, rt('ListContainers'), { filter });
  // Each body runs at least once (an endAt already past: one pass of every loop, the warm-up).
  const loop = async (periodMs: number, body: () => Promise<void>): Promise<void> => {
    do {
      await body();
      const wait = Math.min(periodMs, endAt - nowMs());
      if (wait > 0) await sleep(wait);
    } while (nowMs() < endAt);
  };
  await Promise.all([
    // PLEG relist.
    loop(1000, async () => {
      const t = nowMs();
      await listPods('ListPodSandbox', null);
      await listContainers('ListContainers', {});
      s.relist.push(nowMs() - t);
      s.relistAt.push(t - t0);
    }),
    // Housekeeping.
    loop(2000, async () => {
      await listPods('ListPodSandbox{READY}', { state: { state: 'SANDBOX_READY' } });
      await listContainers('ListContainers{RUNNING}', { state: { state: 'CONTAINER_RUNNING' } });
    }),
    // Runtime status.
    loop(5000, async () => {
      await timed('Status', rt('Status'), { verbose: false });
    }),
    // Eviction manager's stats.
    loop(10_000, async () => {
      s.burstAt.push(nowMs() - t0);
      await timed('ImageFsInfo', im('ImageFsInfo'), {});
      await listContainers('ListContainers', {});
      await listPods('ListPodSandbox', null);
      await timed('ListContainerStats', rt('ListContainerStats'), { filter: {} });
    }),
    // Container log manager: every running container's status.
    loop(10_000, async () => {
      const res = (await listContainers('ListContainers', {})) as { containers: Array<{ id: string; state: string }> } | undefined;
      for (const c of res?.containers ?? []) {
        if (c.state === 'CONTAINER_RUNNING') await timed('ContainerStatus', rt('ContainerStatus'), { containerId: c.id, verbose: false });
      }
    }),
    // Image manager.
    loop(30_000, async () => {
      await timed('ListImages', im('ListImages'), { filter: null });
    }),
    // Container GC.
    loop(60_000, async () => {
      await listContainers('ListContainers', {});
      await listContainers('ListContainers', {});
      await listPods('ListPodSandbox', null);
    }),
  ]);
}

/**
 * The CPU floor: the calls of the berthd window, each at the same time after
 * the start and on the same kind of connection, against a bare grpc-js
 * server in its own process that answers each with an empty reply. Returns
 * that server's CPU, % of one core.
 */
async function floorCpu(c: Cleanups, base: string, calls: readonly CallRecord[], seconds: number, warmupSeconds: number): Promise<number> {
  const sock = path.join(base, 'floor-cpu.sock');
  const proc = spawn(process.execPath, [...berthdNodeFlags(), path.join(__dirname, 'floor_server.js'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  c.add('stop the CPU floor server', () => void proc.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    proc.stdout.once('data', () => resolve());
    proc.once('exit', (code) => reject(new Error(`floor server exited ${code}`)));
  });
  const cri = loadCri();
  const rt = connect<RuntimeServiceClient & grpc.Client>(cri.runtime.v1.RuntimeService, sock);
  const im = connect<ImageServiceClient & grpc.Client>(cri.runtime.v1.ImageService, sock);
  try {
    // Warm, as berthd was: every method of the window answered once before it.
    const methods = new Map(calls.map((k) => [`${k.image} ${k.method}`, k]));
    for (const k of [{ image: false, method: 'Version' }, ...methods.values()]) await (k.image ? im : rt).call(k.method)({});
    const replay = async (): Promise<number> => {
      const t0 = nowMs();
      await Promise.all(
        calls.map(async (k) => {
          await sleep(Math.max(0, k.atMs - (nowMs() - t0)));
          await (k.image ? im : rt).call(k.method)({});
        }),
      );
      await sleep(Math.max(0, seconds * 1000 - (nowMs() - t0)));
      return (nowMs() - t0) / 1000;
    };
    // As long a warm-up as berthd had, with the same calls.
    for (const warmEnd = nowMs() + warmupSeconds * 1000; nowMs() < warmEnd; ) await replay();
    const pid = proc.pid ?? 0;
    const cpu0 = cpuSeconds(pid);
    const elapsed = await replay();
    return ((cpuSeconds(pid) - cpu0) / elapsed) * 100;
  } finally {
    rt.client.close();
    im.client.close();
  }
}

// ---------------------------------------------------------------- output

function stats(samples: number[]): { n: number; median: number; p90: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, median: percentile(s, 50), p90: percentile(s, 90), max: s[s.length - 1] ?? NaN };
}

function latencyLine(label: string, samples: number[], floor: { median: number; p90: number }): string {
  const s = stats(samples);
  return (
    `${label.padEnd(32)} n=${String(s.n).padStart(4)}  median ${fmt(s.median).padStart(7)}  p90 ${fmt(s.p90).padStart(7)}  max ${fmt(s.max).padStart(7)} ms` +
    `  ratio ${(s.median / floor.median).toFixed(1)}x (p90 ${(s.p90 / floor.p90).toFixed(1)}x)`
  );
}

/** The three slowest relists: "31.2 ms at +0.4 s" (after the last 10 s stats pass began; negative: it began just before), to see what they coincide with. */
function slowRelists(s: Samples): string {
  const order = s.relist.map((ms, i) => i).sort((a, b) => s.relist[b] - s.relist[a]);
  return order
    .slice(0, 3)
    .map((i) => {
      const at = s.relistAt[i];
      const burst = s.burstAt.filter((b) => b <= at + s.relist[i]).pop();
      const after = burst === undefined ? undefined : (at - burst) / 1000;
      return `${fmt(s.relist[i])} ms at ${after === undefined ? '?' : `${after < 0 ? '' : '+'}${after.toFixed(1)} s`}`;
    })
    .join(', ');
}

// ---------------------------------------------------------------- the benchmark

/** The pod counts to run: STEADY_PODS (or `run.js steady N`), else 110 and then 250 to show how the cost grows. */
function podCounts(): number[] {
  const arg = process.argv[2] === 'steady' ? process.argv[3] : undefined;
  const given = arg ?? process.env.STEADY_PODS;
  if (given === undefined) return [110, 250];
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) throw new Error(`STEADY_PODS must be a positive integer, got ${given}`);
  return [n];
}

function positiveSeconds(name: string, fallback: number): number {
  const v = Number(process.env[name] ?? fallback);
  if (!(v > 0)) throw new Error(`${name} must be a positive number of seconds, got ${process.env[name]}`);
  return v;
}

/** One run's headline figures, to compare runs of different sizes. */
interface SteadyFigures {
  pods: number;
  cpu: number;
  floorCpu: number;
  relist: { median: number; p90: number };
}

export async function benchSteady(): Promise<void> {
  const counts = podCounts();
  const seconds = positiveSeconds('STEADY_SECONDS', 60);
  // The larger run shows how the cost grows; shorter windows keep `make bench` affordable.
  const scaleSeconds = positiveSeconds('STEADY_SCALE_SECONDS', Math.min(seconds, 30));
  const warmupSeconds = Number(process.env.STEADY_WARMUP_SECONDS ?? 0);
  if (!(warmupSeconds >= 0)) throw new Error(`STEADY_WARMUP_SECONDS must be a number of seconds, got ${process.env.STEADY_WARMUP_SECONDS}`);
  const runs: SteadyFigures[] = [];
  for (const [i, pods] of counts.entries()) {
    if (i > 0) out('');
    runs.push(await steadyRun(pods, i === 0 ? seconds : scaleSeconds, warmupSeconds));
  }
  if (runs.length > 1) {
    const [a, b] = runs;
    const ratio = (x: number, y: number): string => `${(x / y).toFixed(2)}x`;
    out(
      `\n${b.pods} pods against ${a.pods} (${(b.pods / a.pods).toFixed(2)}x the pods): CPU ${ratio(b.cpu, a.cpu)} ` +
        `(floors ${ratio(b.floorCpu, a.floorCpu)}), relist median ${ratio(b.relist.median, a.relist.median)}, p90 ${ratio(b.relist.p90, a.relist.p90)}` +
        `  CPU ${target(b.cpu / a.cpu, 2.5, 'x')}; relist median ${target(b.relist.median / a.relist.median, 2.5, 'x')}`,
    );
  }
}

async function steadyRun(pods: number, seconds: number, warmupSeconds: number): Promise<SteadyFigures> {
  let figures: SteadyFigures | undefined;
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-bench-steady-');
    const logRoot = path.join(base, 'logs');
    const loopDelay = process.env.STEADY_LOOP_DELAY !== '0';
    const metricsPort = loopDelay ? await freePort() : undefined;
    const profDir = process.env.STEADY_CPU_PROF;
    const nodeArgs = [...(process.env.STEADY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean), ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir)}`] : [])];
    const b = await startBerth(c, { metricsPort, phaseMetrics: !loopDelay, nodeArgs });
    const gcNow = (): Promise<GcFigures> => gcFigures(b.berthd.metricsPort);

    // Floor of a round trip: a bare grpc-js server answering Version, over its own connection.
    const floorSock = path.join(base, 'floor.sock');
    const floorSrv = await floorServer(floorSock);
    c.add('stop the floor server', () => floorSrv.forceShutdown());
    const cri = loadCri();
    const floorConn = connect<RuntimeServiceClient & grpc.Client>(cri.runtime.v1.RuntimeService, floorSock);
    c.add('close the floor client', () => floorConn.client.close());
    const floorVersion = floorConn.call('Version');
    for (let i = 0; i < 20; i++) await floorVersion({ version: '' });
    const floorMs: number[] = [];
    for (let i = 0; i < FLOOR_SAMPLES; i++) {
      const t = nowMs();
      await floorVersion({ version: '' });
      floorMs.push(nowMs() - t);
    }
    const floor = stats(floorMs);

    // The pods, PARALLEL start chains at a time; removed by us, PARALLEL at a time, before berthd stops.
    const ids: string[] = [];
    c.add('remove the steady pods', async () => {
      for (let i = 0; i < ids.length; i += PARALLEL) {
        await Promise.all(
          ids.slice(i, i + PARALLEL).map(async (id) => {
            await b.berthd.cri.runtime.StopPodSandbox({ podSandboxId: id });
            await b.berthd.cri.runtime.RemovePodSandbox({ podSandboxId: id });
          }),
        );
      }
    });
    const tStart = nowMs();
    for (let i = 0; i < pods; i += PARALLEL) {
      ids.push(...(await Promise.all(Array.from({ length: Math.min(PARALLEL, pods - i) }, (_x, k) => startPod(b, logRoot, i + k + 1)))));
    }
    const startMs = nowMs() - tStart;
    await sleep(2000); // let start-up work settle before the idle window

    // Idle window: the floor of CPU and event-loop delay.
    const delay = async (): Promise<{ p99: number; max: number }> => (metricsPort ? eventLoopDelay(metricsPort) : { p99: NaN, max: NaN });
    await delay(); // starts a new window
    const idleGc0 = await gcNow();
    const idleFromUs = monotonicUs();
    const idleCpu0 = cpuSeconds(b.pid);
    await sleep(seconds * 1000);
    const idleCpu = ((cpuSeconds(b.pid) - idleCpu0) / seconds) * 100;
    const idleToUs = monotonicUs();
    const idleDelay = await delay();
    const idleGc1 = await gcNow();
    const idleMem = berthPssKb(b);

    // Polling window.
    const rtConn = connect<RuntimeServiceClient & grpc.Client>(cri.runtime.v1.RuntimeService, b.berthd.socket);
    const imConn = connect<ImageServiceClient & grpc.Client>(cri.runtime.v1.ImageService, b.berthd.socket);
    c.add('close the kubelet clients', () => {
      rtConn.client.close();
      imConn.client.close();
    });
    // Connect both before the window, as a running kubelet is connected, and
    // make one pass of every loop: the window measures the steady state, not
    // what a daemon does once (code generated for a message type on its first
    // encoding, first encodings of each record, cgroup files opened).
    await rtConn.call('Version')({ version: '' });
    await replayKubelet(rtConn.call, imConn.call, nowMs() + warmupSeconds * 1000, new Samples());
    await delay();
    const pollGc0 = await gcNow();
    const samples = new Samples();
    const cpu0 = cpuSeconds(b.pid);
    const mainCpu0 = cpuSeconds(b.pid, true);
    const pollFromUs = monotonicUs();
    const t0 = nowMs();
    await replayKubelet(rtConn.call, imConn.call, t0 + seconds * 1000, samples);
    const elapsed = (nowMs() - t0) / 1000;
    const pollToUs = monotonicUs();
    const busyCpu = ((cpuSeconds(b.pid) - cpu0) / elapsed) * 100;
    const busyMainCpu = ((cpuSeconds(b.pid, true) - mainCpu0) / elapsed) * 100;
    const busyDelay = await delay();
    const pollGc1 = await gcNow();
    const busyMem = berthPssKb(b);
    const floorCpuPct = await floorCpu(c, base, samples.calls, seconds, warmupSeconds);

    out(
      `${pods} pods (busybox sleep, host network) started ${PARALLEL} at a time in ${(startMs / 1000).toFixed(1)} s; windows of ${seconds} s` +
        (warmupSeconds > 0 ? `, the polling one after ${warmupSeconds} s of the same traffic (the floor server's too)` : ''),
    );
    out(`floor  bare grpc-js Version round trip   n=${floor.n}  median ${fmt(floor.median)}  p90 ${fmt(floor.p90)}  max ${fmt(floor.max)} ms`);
    out(
      `berthd CPU under the kubelet's polling   ${busyCpu.toFixed(2)} % of a core  ${target(busyCpu, 1, ' %')}` +
        `  (main thread ${busyMainCpu.toFixed(2)} %, V8's compiler and GC threads and libuv's pool ${Math.max(0, busyCpu - busyMainCpu).toFixed(2)} % (clock ticks: ±1 each))\n` +
        `  floor: a bare grpc-js server answering the same ${samples.calls.length} calls at the same times ${floorCpuPct.toFixed(2)} %` +
        ` (ratio ${(busyCpu / Math.max(floorCpuPct, 0.01)).toFixed(1)}x); berthd idle (same pods, no polling; ` +
        `${metricsPort ? "with the bench's 10 ms event-loop sampling timer, as the polling window" : 'no event-loop sampling timer'}) ${idleCpu.toFixed(2)} %: the polling itself ${(busyCpu - idleCpu).toFixed(2)} %`,
    );
    const relist = stats(samples.relist);
    out(
      `one relist (ListPodSandbox+ListContainers) n=${relist.n}  median ${fmt(relist.median)}  p90 ${fmt(relist.p90)}  max ${fmt(relist.max)} ms` +
        `  ratio ${(relist.median / floor.median).toFixed(1)}x of one floor round trip (p90 ${(relist.p90 / floor.p90).toFixed(1)}x)  p90 ${target(relist.p90, 10, ' ms')}`,
    );
    out(`  the slowest relists, each with how long after a 10 s stats pass began: ${slowRelists(samples)}`);
    out(`per RPC (ms; ratio: median and p90 against the floor round trip's):`);
    const order = [
      'ListPodSandbox',
      'ListPodSandbox{READY}',
      'ListContainers',
      'ListContainers{RUNNING}',
      'ContainerStatus',
      'Status',
      'ImageFsInfo',
      'ListImages',
      'ListContainerStats',
    ];
    for (const name of order) {
      const list = samples.byRpc.get(name) ?? [];
      out(`  ${latencyLine(name, list, floor)}  p90 ${target(stats(list).p90, STATS_RPCS.has(name) ? 50 : 20, ' ms')}`);
    }
    if (!metricsPort) out('event-loop delay in berthd: not measured (STEADY_LOOP_DELAY=0)');
    else out(
      `event-loop delay in berthd (its /metrics)  polling p99 ${fmt(busyDelay.p99)} ms, max ${fmt(busyDelay.max)} ms` +
        `   floor (idle) p99 ${fmt(idleDelay.p99)} ms, max ${fmt(idleDelay.max)} ms  p99 ${target(busyDelay.p99, 20, ' ms')}`,
    );
    out(`V8 collections in berthd (its /metrics)  idle: ${gcLine(idleGc0, idleGc1)}\n  polling: ${gcLine(pollGc0, pollGc1)}`);
    out(
      `memory per pod (Pss of berthd + shims + pauses / ${pods})  idle ${(idleMem.total / pods).toFixed(0)} KiB, polling ${(busyMem.total / pods).toFixed(0)} KiB` +
        `  (berthd ${mib(idleMem.daemon)} idle, ${mib(busyMem.daemon)} polling; helpers ${mib(busyMem.helpers)})` +
        `  ${target(Math.max(idleMem.total, busyMem.total) / pods / 1024, 1, ' MiB')}`,
    );
    if (profDir) {
      out(`profile windows (CLOCK_MONOTONIC µs, the profile's clock): idle ${idleFromUs} ${idleToUs}, polling ${pollFromUs} ${pollToUs}`);
    }
    if (samples.errors > 0) out(`RPC errors during the window: ${samples.errors}`);
    figures = { pods, cpu: busyCpu, floorCpu: floorCpuPct, relist: { median: relist.median, p90: relist.p90 } };
  });
  if (!figures) throw new Error('steady run ended without figures');
  return figures;
}
