// Pod start and teardown through berthd (RunPodSandbox + CreateContainer +
// StartContainer of busybox `sleep 3600`; StopPodSandbox + RemovePodSandbox),
// host-network and on a CNI bridge network, 50 pods started 10 at a time, and
// the memory per running pod. Floors: bare `runc run -d` / `runc delete -f`
// of the same rootfs, and the CNI plugins run by hand on an `ip netns add`
// namespace.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PodSandboxConfig } from '../src/gen/runtime/v1/PodSandboxConfig';
import {
  benchUid,
  berthHelpers,
  cpuMsOf,
  type BerthBench,
  type Cleanups,
  latencyRow,
  mib,
  mustRun,
  nowMs,
  out,
  parentOf,
  pidsNamed,
  pssKb,
  run,
  sleep,
  RuncFloor,
  startBerth,
  statusKb,
  target,
  tempDir,
  timed,
  withCleanups,
} from './common';
import { printPhases, scrapePhases } from './phases';
import { fmt, summary } from './stats';
import { removeIptablesMentioning } from '../test/network/net_helpers';

const RUNS = 20;
const CNI_RUNS = 10;
const MANY = 50;
const PARALLEL = 10;
const SHARED_PID_RUNS = 10;
/** Quiet time before the memory of the 50 running pods is read: past berthd's quiet-time trim (1.5 s). */
const SETTLE_MS = 2500;
export const CNI_BIN = '/usr/lib/cni';

let podSeq = 0;

/**
 * The namespace options a kubelet sends: a PID namespace per container unless
 * the pod sets shareProcessNamespace (`sharedPid`), which gives the pod a
 * berth-pause as its PID 1.
 */
function namespaceOptions(hostNetwork: boolean, sharedPid: boolean) {
  return { network: hostNetwork ? 'NODE' : 'POD', pid: sharedPid ? 'POD' : 'CONTAINER', ipc: 'POD' } as const;
}

function podConfig(logRoot: string, hostNetwork: boolean, sharedPid: boolean): PodSandboxConfig {
  const n = ++podSeq;
  return {
    metadata: { name: `bench${n}`, namespace: 'bench', uid: benchUid(n), attempt: 0 },
    hostname: `bench${n}`,
    logDirectory: path.join(logRoot, `pod${n}`),
    linux: { securityContext: { namespaceOptions: namespaceOptions(hostNetwork, sharedPid) } },
  };
}

/** Per-RPC times of the last pod start/teardown, for the breakdown rows. */
const phases = new Map<string, number[]>();
function phase(name: string, ms: number): void {
  phases.set(name, [...(phases.get(name) ?? []), ms]);
}

async function startPod(b: BerthBench, logRoot: string, hostNetwork: boolean, record = false, sharedPid = false): Promise<string> {
  const rt = b.berthd.cri.runtime;
  const config = podConfig(logRoot, hostNetwork, sharedPid);
  let t = nowMs();
  const { podSandboxId } = await rt.RunPodSandbox({ config });
  if (record) phase('RunPodSandbox', nowMs() - t);
  t = nowMs();
  const { containerId } = await rt.CreateContainer({
    podSandboxId,
    config: {
      metadata: { name: 'sleep' },
      image: { image: b.image },
      command: ['sleep', '3600'],
      logPath: 'sleep.log',
      linux: { securityContext: { namespaceOptions: namespaceOptions(hostNetwork, sharedPid) } },
    },
    sandboxConfig: config,
  });
  if (record) phase('CreateContainer', nowMs() - t);
  t = nowMs();
  await rt.StartContainer({ containerId });
  if (record) phase('StartContainer', nowMs() - t);
  return podSandboxId;
}

async function teardownPod(b: BerthBench, id: string, record = false): Promise<void> {
  let t = nowMs();
  await b.berthd.cri.runtime.StopPodSandbox({ podSandboxId: id });
  if (record) phase('StopPodSandbox', nowMs() - t);
  t = nowMs();
  await b.berthd.cri.runtime.RemovePodSandbox({ podSandboxId: id });
  if (record) phase('RemovePodSandbox', nowMs() - t);
}

/** "of which" rows: each RPC's median and its share of the whole operation's median. */
function breakdown(names: string[], whole: number[]): void {
  const wholeMedian = summary(whole).median;
  for (const n of names) {
    const s = summary(phases.get(n) ?? []);
    out(`         of which ${n.padEnd(17)} median ${fmt(s.median).padStart(7)} ms  p90 ${fmt(s.p90).padStart(7)} ms  (${((s.median / wholeMedian) * 100).toFixed(0)}% of the median)`);
  }
  for (const n of names) phases.delete(n);
}

async function berthPodRows(b: BerthBench, logRoot: string, hostNetwork: boolean, runs: number, sharedPid = false): Promise<{ start: number[]; stop: number[] }> {
  // One untimed warm-up: first-use costs (runtime probing, image config read) are not per-pod.
  await teardownPod(b, await startPod(b, logRoot, hostNetwork, false, sharedPid));
  const start: number[] = [];
  const stop: number[] = [];
  for (let i = 0; i < runs; i++) {
    let id = '';
    start.push(await timed(async () => (id = await startPod(b, logRoot, hostNetwork, true, sharedPid))));
    stop.push(await timed(() => teardownPod(b, id, true)));
  }
  return { start, stop };
}

async function runcRows(floor: RuncFloor, runs: number, tag: string): Promise<{ start: number[]; stop: number[] }> {
  await floor.start(`${tag}-warm`);
  await floor.delete(`${tag}-warm`);
  const start: number[] = [];
  const stop: number[] = [];
  for (let i = 0; i < runs; i++) {
    const id = `${tag}-${i}`;
    start.push(await timed(() => floor.start(id)));
    stop.push(await timed(() => floor.delete(id)));
  }
  return { start, stop };
}

// ---------------------------------------------------------------- CNI

export interface BenchNet {
  name: string;
  bridge: string;
  subnet: string;
  ipamDir: string;
  conflist: Record<string, unknown>;
}

export function benchNet(c: Cleanups, base: string, label: string, subnet: string): BenchNet {
  const tag = randomBytes(3).toString('hex');
  const name = `berthbench-${label}-${tag}`;
  const bridge = `bb${label[0]}${tag}`;
  const ipamDir = path.join(base, `ipam-${label}`);
  const conflist = {
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: ipamDir },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  c.add(`remove bridge ${bridge} and its iptables rules`, async () => {
    await run('ip', ['link', 'del', bridge]);
    await removeIptablesMentioning(name);
  });
  return { name, bridge, subnet, ipamDir, conflist };
}

/** The plugin chain by hand, as libcni does it: ADD in order feeding prevResult, DEL in reverse. */
class CniByHand {
  private results = new Map<string, unknown>();

  constructor(private readonly net: BenchNet) {}

  private async exec(plugin: Record<string, unknown>, command: 'ADD' | 'DEL', id: string, netns: string, prev: unknown): Promise<unknown> {
    const conf = { cniVersion: this.net.conflist.cniVersion, name: this.net.name, ...plugin, ...(prev ? { prevResult: prev } : {}) };
    const env = {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: CNI_BIN,
    };
    const stdout = await mustRun(path.join(CNI_BIN, String(plugin.type)), [], { input: JSON.stringify(conf), env });
    return command === 'ADD' ? (JSON.parse(stdout) as unknown) : undefined;
  }

  private get plugins(): Array<Record<string, unknown>> {
    return this.net.conflist.plugins as Array<Record<string, unknown>>;
  }

  async add(id: string, netns: string): Promise<void> {
    let prev: unknown;
    for (const p of this.plugins) prev = await this.exec(p, 'ADD', id, netns, prev);
    this.results.set(id, prev);
  }

  async del(id: string, netns: string): Promise<void> {
    const prev = this.results.get(id);
    for (const p of [...this.plugins].reverse()) await this.exec(p, 'DEL', id, netns, prev);
    this.results.delete(id);
  }
}

async function netnsAdd(c: Cleanups, name: string): Promise<string> {
  await mustRun('ip', ['netns', 'add', name]);
  c.add(`ip netns del ${name}`, () => run('ip', ['netns', 'del', name]));
  return `/run/netns/${name}`;
}

// ---------------------------------------------------------------- memory

/** Size of the distinct memfds named `name` that `pid` holds open, in KiB. */
function memfdKb(pid: number, name: string): number {
  const seen = new Set<number>();
  let kb = 0;
  const dir = `/proc/${pid}/fd`;
  for (const fd of fs.readdirSync(dir)) {
    try {
      if (!fs.readlinkSync(path.join(dir, fd)).startsWith(name)) continue;
      const st = fs.statSync(path.join(dir, fd));
      if (!seen.has(st.ino)) kb += Math.ceil(st.size / 1024);
      seen.add(st.ino);
    } catch {
      // closed meanwhile
    }
  }
  return kb;
}

function podMemory(b: BerthBench, pods: number, daemonBeforeKb: number, daemonJustAfterKb: number): void {
  const helpers = berthHelpers(b.berthd.dir);
  const byComm = new Map<string, number[]>();
  for (const h of helpers) byComm.set(h.comm, [...(byComm.get(h.comm) ?? []), pssKb(h.pid)]);
  // berth-launch is berthd's own (one per daemon, not per pod): counted with it.
  for (const pid of pidsNamed('berth-launch').filter((p) => parentOf(p) === b.pid)) {
    byComm.set('berth-launch (one per berthd)', [pssKb(pid)]);
    // Its sealed copy of runc is shared memory no process maps while idle, so no Pss shows it.
    const copyKb = memfdKb(pid, '/memfd:berth-runtime');
    if (copyKb > 0) byComm.set('runc copy (berth-launch\'s sealed memfd)', [copyKb]);
  }
  const daemon = pssKb(b.pid);
  let total = daemon;
  out(`memory with ${pods} pods running, berthd settled (${SETTLE_MS / 1000} s without a call: its quiet-time trim ran) (Pss from /proc/PID/smaps_rollup):`);
  out(`  berthd                                       ${mib(daemon)}  (${mib(daemonBeforeKb)} before the pods: ${((daemon - daemonBeforeKb) / pods).toFixed(0)} KiB per pod; ${mib(daemonJustAfterKb)} right after the starts)`);
  for (const [comm, list] of [...byComm.entries()].sort()) {
    const sum = list.reduce((a, x) => a + x, 0);
    total += sum;
    const sorted = [...list].sort((x, y) => x - y);
    out(`  ${`${comm} x${list.length}`.padEnd(44)} ${mib(sum)}  (one: median ${(sorted[Math.floor(sorted.length / 2)] ?? 0)} KiB)`);
  }
  out(`  total                                        ${mib(total)}  = ${(total / pods).toFixed(0)} KiB per pod (berthd included)  ${target(total / pods / 1024, 1.2, ' MiB')}`);
  out(`  per pod without berthd                       ${((total - daemon) / pods).toFixed(0)} KiB`);
}

// ---------------------------------------------------------------- the benchmark

export async function benchPod(): Promise<void> {
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-bench-pod-');
    const logRoot = path.join(base, 'logs');
    const berthNet = benchNet(c, base, 'berth', '10.94.0.0/17');
    const floorNet = benchNet(c, base, 'floor', '10.94.128.0/17');
    const confDir = path.join(base, 'net.d');
    fs.mkdirSync(confDir);
    fs.writeFileSync(path.join(confDir, '10-bench.conflist'), JSON.stringify(berthNet.conflist));
    const b = await startBerth(c, {
      configToml: `[cni]\nconf_dir = ${JSON.stringify(confDir)}\nbin_dirs = ["${CNI_BIN}"]\n`,
      phaseMetrics: true,
    });
    await sleep(2000); // start-up work settles
    const rssStart = statusKb(b.pid, 'VmRSS');
    const pssIdle = pssKb(b.pid);
    out(`berthd idle after start (one image, no pods): Pss ${mib(pssIdle)} (smaps_rollup), VmRSS ${mib(rssStart)}  ${target(pssIdle / 1024, 45, ' MiB')}`);

    // Floors first, so the bare runc figures are not measured with 50 berth pods around.
    const floor = new RuncFloor(c, path.join(base, 'runc'));
    await floor.init();
    const bare = await runcRows(floor, RUNS, `bench-${process.pid}`);

    const hostPhases = await scrapePhases(b);
    const host = await berthPodRows(b, logRoot, true, RUNS);
    const hostPhasesAfter = await scrapePhases(b);
    out(`host-network pod (no CNI), ${RUNS} runs each, after one warm-up:`);
    out(latencyRow('floor  runc run -d (sleep 3600)', bare.start));
    out(latencyRow('berthd pod start (RunPod+Create+Start)', host.start, bare.start));
    breakdown(['RunPodSandbox', 'CreateContainer', 'StartContainer'], host.start);
    printPhases(hostPhases, hostPhasesAfter);
    out(latencyRow('floor  runc delete -f', bare.stop));
    out(latencyRow('berthd pod teardown (StopPod+RemovePod)', host.stop, bare.stop));
    breakdown(['StopPodSandbox', 'RemovePodSandbox'], host.stop);
    // A pod with shareProcessNamespace: berth-pause is its PID 1 (for information; the targets are the kubelet's default pods).
    const shared = await berthPodRows(b, logRoot, true, SHARED_PID_RUNS, true);
    out(`host-network pod with shareProcessNamespace (berth-pause as its PID 1), ${SHARED_PID_RUNS} runs:`);
    out(latencyRow('berthd pod start, shared PID namespace', shared.start, bare.start));
    out(latencyRow('berthd pod teardown, shared PID namespace', shared.stop, bare.stop));

    // CNI: by hand (ip netns add + bridge/host-local/portmap ADD, then runc run in that netns), then through berthd.
    const byHand = new CniByHand(floorNet);
    const floorCni = new RuncFloor(c, path.join(base, 'runc-net'));
    await floorCni.init();
    const cniAdd: number[] = [];
    const cniDel: number[] = [];
    const netStart: number[] = [];
    const netStop: number[] = [];
    for (let i = -1; i < CNI_RUNS; i++) {
      const nsName = `berthbench-${process.pid}-${i + 1}`;
      const id = `bench-net-${process.pid}-${i + 1}`;
      let nsPath = '';
      const t0 = nowMs();
      const add = await timed(async () => {
        nsPath = await netnsAdd(c, nsName);
        await byHand.add(id, nsPath);
      });
      floorCni.setNetns(nsPath);
      await floorCni.start(id);
      const t1 = nowMs();
      await floorCni.delete(id);
      const del = await timed(async () => {
        await byHand.del(id, nsPath);
        await mustRun('ip', ['netns', 'del', nsName]);
      });
      const t2 = nowMs();
      if (i < 0) continue; // warm-up
      cniAdd.push(add);
      cniDel.push(del);
      netStart.push(t1 - t0);
      netStop.push(t2 - t1);
    }
    const netPhases = await scrapePhases(b);
    const net = await berthPodRows(b, logRoot, false, CNI_RUNS);
    const netPhasesAfter = await scrapePhases(b);
    out(`pod on a CNI bridge network (bridge+host-local+portmap), ${CNI_RUNS} runs each, after one warm-up:`);
    out(latencyRow('floor  netns add + CNI ADD by hand', cniAdd));
    out(latencyRow('floor  netns+CNI ADD + runc run -d', netStart));
    out(latencyRow('berthd pod start with networking', net.start, netStart));
    breakdown(['RunPodSandbox', 'CreateContainer', 'StartContainer'], net.start);
    printPhases(netPhases, netPhasesAfter);
    out(latencyRow('floor  CNI DEL by hand + netns del', cniDel));
    out(latencyRow('floor  runc delete -f + CNI DEL + netns del', netStop));
    out(latencyRow('berthd pod teardown with networking', net.stop, netStop));
    breakdown(['StopPodSandbox', 'RemovePodSandbox'], net.stop);

    // Many pods: 50 host-network pods, 10 RPC chains in flight at a time.
    const pssBefore = pssKb(b.pid);
    const rssBefore = statusKb(b.pid, 'VmRSS');
    const ids: string[] = [];
    const manyPhases = await scrapePhases(b);
    const cpuBefore = cpuMsOf(b.pid);
    const t0 = nowMs();
    for (let i = 0; i < MANY; i += PARALLEL) {
      const batch = await Promise.all(Array.from({ length: Math.min(PARALLEL, MANY - i) }, () => startPod(b, logRoot, true)));
      ids.push(...batch);
    }
    const manyMs = nowMs() - t0;
    const manyCpu = cpuMsOf(b.pid) - cpuBefore;
    const manyPhasesAfter = await scrapePhases(b);
    const pssJustAfter = pssKb(b.pid);
    const floorMany = nowMs();
    const manyIds = Array.from({ length: MANY }, (_x, i) => `bench-many-${process.pid}-${i}`);
    for (let i = 0; i < MANY; i += PARALLEL) await Promise.all(manyIds.slice(i, i + PARALLEL).map((id) => floor.start(id)));
    const floorManyMs = nowMs() - floorMany;
    const floorDel = nowMs();
    for (let i = 0; i < MANY; i += PARALLEL) await Promise.all(manyIds.slice(i, i + PARALLEL).map((id) => floor.delete(id)));
    const floorDelMs = nowMs() - floorDel;
    out(`${MANY} pods (one container each), ${PARALLEL} at a time:`);
    out(`floor  ${MANY} x runc run -d                     wall ${(floorManyMs / 1000).toFixed(2).padStart(6)} s`);
    out(`berthd ${MANY} host-network pods start           wall ${(manyMs / 1000).toFixed(2).padStart(6)} s  ratio ${(manyMs / floorManyMs).toFixed(2)}x`);
    out(`         berthd's own CPU for them ${manyCpu.toFixed(0)} ms (${(manyCpu / MANY).toFixed(1)} ms a pod); the phases with ${PARALLEL} at a time:`);
    printPhases(manyPhases, manyPhasesAfter);
    // Memory of running pods, not of their start: berthd trims once it has been quiet a while (src/util/malloc_trim.ts).
    await sleep(Math.max(0, SETTLE_MS - (nowMs() - floorMany)));
    podMemory(b, ids.length, pssBefore, pssJustAfter);
    const tStop = nowMs();
    for (let i = 0; i < ids.length; i += PARALLEL) await Promise.all(ids.slice(i, i + PARALLEL).map((id) => teardownPod(b, id)));
    const stopMs = nowMs() - tStop;
    out(`floor  ${MANY} x runc delete -f                  wall ${(floorDelMs / 1000).toFixed(2).padStart(6)} s`);
    out(`berthd ${MANY} pods teardown                     wall ${(stopMs / 1000).toFixed(2).padStart(6)} s  ratio ${(stopMs / floorDelMs).toFixed(2)}x`);
    out(`berthd VmRSS ${mib(rssStart)} at start, ${mib(rssBefore)} before the ${MANY} pods, ${mib(statusKb(b.pid, 'VmRSS'))} after they are gone`);
    const left = berthHelpers(b.berthd.dir);
    out(`berth helper processes left after teardown: ${left.length}${left.length ? ` (${left.map((p) => `${p.comm}:${p.pid}`).join(' ')})` : ''}`);
  });
}
