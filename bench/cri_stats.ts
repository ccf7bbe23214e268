// The stats path with 100 running containers (10 host-network pods of 10
// busybox `sleep`s): ListContainerStats and ListPodSandboxStats median
// latency and berthd CPU per call, next to the floor measured in the same
// run: reading the same cgroup files of the 100 containers (and 10 pods)
// directly in this process. Also ListPodSandboxMetrics (crictl metricsp).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchUid, latencyRow, out, startBerth, tempDir, timed, withCleanups } from './common';
import { summary } from './stats';

const PODS = 10;
const PER_POD = 10;
const N = 30;
const WARMUP = 3;
const TICK_MS = 10; // USER_HZ 100

/** berthd's CPU time so far (user + system), ms. */
function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** What the stats RPCs read per cgroup on this (v1/hybrid) host. */
const V1_FILES = [
  'cpuacct/cpuacct.usage',
  'memory/memory.usage_in_bytes',
  'memory/memory.limit_in_bytes',
  'memory/memory.stat',
  'pids/pids.current',
];

function readCgroup(cg: string): void {
  for (const f of V1_FILES) {
    const [ctl, file] = f.split('/');
    try {
      fs.readFileSync(path.join('/sys/fs/cgroup', ctl, cg, file), 'utf8');
    } catch {
      // not on this host
    }
  }
}

async function measure(pid: number, fn: () => Promise<unknown>): Promise<{ ms: number[]; cpuPerCall: number }> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const ms: number[] = [];
  const cpu0 = cpuMs(pid);
  for (let i = 0; i < N; i++) ms.push(await timed(fn));
  return { ms, cpuPerCall: (cpuMs(pid) - cpu0) / N };
}

export async function benchStats(): Promise<void> {
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-bench-stats-');
    const b = await startBerth(c);
    const rt = b.berthd.cri.runtime;
    const cgroups: string[] = [];
    for (let p = 0; p < PODS; p++) {
      const config = {
        metadata: { name: `stats${p}`, namespace: 'bench', uid: benchUid(`stats${p}`), attempt: 0 },
        hostname: `stats${p}`,
        logDirectory: path.join(base, `logs${p}`),
        linux: { securityContext: { namespaceOptions: { network: 'NODE' as const } } },
      };
      const { podSandboxId } = await rt.RunPodSandbox({ config });
      const ids = await Promise.all(
        Array.from({ length: PER_POD }, async (_x, i) => {
          const { containerId } = await rt.CreateContainer({
            podSandboxId,
            config: { metadata: { name: `s${i}` }, image: { image: b.image }, command: ['sleep', '3600'], logPath: `s${i}.log` },
            sandboxConfig: config,
          });
          await rt.StartContainer({ containerId });
          return containerId;
        }),
      );
      for (const id of ids) {
        const st = await rt.ContainerStatus({ containerId: id, verbose: true });
        const spec = JSON.parse(st.info.info) as { runtimeSpec: { linux: { cgroupsPath: string } } };
        cgroups.push(spec.runtimeSpec.linux.cgroupsPath);
      }
      cgroups.push(path.dirname(cgroups[cgroups.length - 1]));
    }
    const running = (await rt.ListContainerStats({})).stats.length;
    if (running !== PODS * PER_POD) throw new Error(`expected ${PODS * PER_POD} running containers, ListContainerStats has ${running}`);

    // Floor: the same cgroup files, read here (this process's CPU per round).
    const floorMs: number[] = [];
    const c0 = process.cpuUsage();
    for (let i = 0; i < WARMUP + N; i++) {
      const ms = await timed(async () => {
        for (const cg of cgroups) readCgroup(cg);
      });
      if (i >= WARMUP) floorMs.push(ms);
    }
    const cu = process.cpuUsage(c0);
    const floorCpu = (cu.user + cu.system) / 1000 / (WARMUP + N);

    const list = await measure(b.pid, () => rt.ListContainerStats({}));
    const pods = await measure(b.pid, () => rt.ListPodSandboxStats({}));
    const metrics = await measure(b.pid, () => rt.ListPodSandboxMetrics({}));
    out(`stats of ${PODS * PER_POD} running containers in ${PODS} pods, ${N} calls each after ${WARMUP} warm-ups:`);
    out(latencyRow(`floor  read ${V1_FILES.length} cgroup files x ${cgroups.length}`, floorMs));
    out(latencyRow('berthd ListContainerStats', list.ms, floorMs));
    out(latencyRow('berthd ListPodSandboxStats', pods.ms, floorMs));
    out(latencyRow('berthd ListPodSandboxMetrics', metrics.ms, floorMs));
    const cpuRow = (label: string, ms: number) => `${label.padEnd(46)} ${ms.toFixed(1).padStart(6)} ms CPU/call  ratio ${(ms / floorCpu).toFixed(2)}x`;
    out(`${'floor  CPU per round (this process)'.padEnd(46)} ${floorCpu.toFixed(1).padStart(6)} ms CPU/call`);
    out(cpuRow('berthd ListContainerStats', list.cpuPerCall));
    out(cpuRow('berthd ListPodSandboxStats', pods.cpuPerCall));
    out(cpuRow('berthd ListPodSandboxMetrics', metrics.cpuPerCall));
    out(`(berthd CPU from /proc/${b.pid}/stat, 10 ms ticks; medians: floor ${summary(floorMs).median.toFixed(2)} ms)`);
  });
}
