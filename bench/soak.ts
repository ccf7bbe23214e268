// `make soak` (node dist/bench/soak.js [N]): N cycles of pod create →
// container create/start → exec → logs → teardown on a CNI bridge network,
// through a real berthd, then how much every resource a cycle touches grew:
// berthd's fds, heap and RSS, mounts, berth cgroups, pinned netns, iptables
// rules, CNI leases and berth processes. After a warm-up cycle nothing should
// grow; test/soak/soak.test.ts runs a few cycles in CI and asserts that.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchUid, berthHelpers, mustRun, out, startBerth, tempDir, withCleanups, type BerthBench } from './common';
import { freePort } from '../test/helpers/registry';
import { benchNet, CNI_BIN, type BenchNet } from './pod';

export interface SoakSample {
  fds: number;
  rssMiB: number;
  heapMiB: number;
  mounts: number;
  cgroups: number;
  netns: number;
  iptablesRules: number;
  cniLeases: number;
  processes: number;
}

function count(fn: () => number): number {
  try {
    return fn();
  } catch {
    return 0;
  }
}

/**
 * Cgroup directories named after any pod or container this soak created (the
 * machine may be shared: other cgroups, other berthds, are not ours to count).
 */
function berthCgroups(ids: Set<string>): number {
  let n = 0;
  const walk = (dir: string, depth: number): void => {
    if (depth > 6) return;
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      for (const id of ids) {
        if (e.name.includes(id)) {
          n++;
          break;
        }
      }
      walk(path.join(dir, e.name), depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return n;
}

async function heapUsedMiB(b: BerthBench): Promise<number> {
  // Asked of berthd itself over the metrics listener (prom-client's process metrics).
  const res = await fetch(`http://127.0.0.1:${b.berthd.metricsPort}/metrics`);
  const m = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)/m.exec(await res.text());
  return m ? Number(m[1]) / 2 ** 20 : 0;
}

/** Pod and container ids of this soak. */
const created = new Set<string>();

async function sample(b: BerthBench, net: BenchNet): Promise<SoakSample> {
  const pid = b.pid;
  const iptables = await mustRun('iptables-save', []);
  const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return {
    fds: fs.readdirSync(`/proc/${pid}/fd`).length,
    rssMiB: Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
    heapMiB: await heapUsedMiB(b),
    // Ours only: under berthd's private dir (rootfs, shm, pinned namespaces).
    mounts: mountinfo.filter((l) => l.includes(b.berthd.dir)).length,
    cgroups: berthCgroups(created),
    netns: mountinfo.filter((l) => l.includes(' nsfs ') && l.includes(b.berthd.dir)).length,
    // Rules that name this soak's network (CNI's bridge and portmap chains do).
    iptablesRules: iptables.split('\n').filter((l) => l.startsWith('-A') && (l.includes(net.name) || l.includes(net.bridge))).length,
    cniLeases: count(() => fs.readdirSync(path.join(net.ipamDir, net.name)).filter((f) => /^\d/.test(f)).length),
    processes: berthHelpers(b.berthd.dir).length,
  };
}

async function cycle(b: BerthBench, logRoot: string, i: number, whileRunning?: () => Promise<void>): Promise<void> {
  const rt = b.berthd.cri.runtime;
  const config = {
    metadata: { name: `soak${i}`, namespace: 'soak', uid: benchUid(`soak${i}`), attempt: 0 },
    hostname: `soak${i}`,
    logDirectory: path.join(logRoot, `pod${i}`),
  };
  const { podSandboxId } = await rt.RunPodSandbox({ config });
  created.add(podSandboxId);
  const { containerId } = await rt.CreateContainer({
    podSandboxId,
    config: { metadata: { name: 'app' }, image: { image: b.image }, command: ['sh', '-c', `echo soak-${i}; sleep 3600`], logPath: 'app/0.log' },
    sandboxConfig: config,
  });
  created.add(containerId);
  await rt.StartContainer({ containerId });
  const r = await rt.ExecSync({ containerId, cmd: ['echo', 'exec'], timeout: '10' });
  if (r.stdout.toString() !== 'exec\n') throw new Error(`exec said ${JSON.stringify(r.stdout.toString())}`);
  const log = path.join(logRoot, `pod${i}`, 'app', '0.log');
  for (let t = 0; !(fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes(`soak-${i}`)); t++) {
    if (t > 200) throw new Error(`no soak-${i} in ${log}`);
    await new Promise((res) => setTimeout(res, 25));
  }
  await whileRunning?.();
  await rt.StopContainer({ containerId, timeout: '0' });
  await rt.RemoveContainer({ containerId });
  await rt.StopPodSandbox({ podSandboxId });
  await rt.RemovePodSandbox({ podSandboxId });
}

/** Runs `cycles` cycles after one warm-up; returns the samples before and after. */
export interface SoakResult {
  before: SoakSample;
  /** During the last cycle, with its pod running: shows the counters see what a pod holds. */
  during: SoakSample;
  after: SoakSample;
}

export async function soak(cycles: number, print: (line: string) => void = out): Promise<SoakResult> {
  let result: SoakResult | undefined;
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-soak-');
    const net = benchNet(c, base, 'soak', '10.95.0.0/24');
    const confDir = path.join(base, 'net.d');
    fs.mkdirSync(confDir);
    fs.writeFileSync(path.join(confDir, '10-soak.conflist'), JSON.stringify(net.conflist));
    const b = await startBerth(c, {
      configToml: `[cni]\nconf_dir = ${JSON.stringify(confDir)}\nbin_dirs = ["${CNI_BIN}"]\n`,
      metricsPort: await freePort(),
    });
    const logRoot = path.join(base, 'logs');
    await cycle(b, logRoot, 0);
    const before = await sample(b, net);
    const t0 = Date.now();
    let during = before;
    for (let i = 1; i <= cycles; i++) {
      await cycle(b, logRoot, i, i === cycles ? async () => void (during = await sample(b, net)) : undefined);
    }
    await new Promise((res) => setTimeout(res, 500));
    const after = await sample(b, net);
    print(`${cycles} cycles (pod + container + exec + logs + teardown, CNI bridge) in ${((Date.now() - t0) / 1000).toFixed(1)} s; growth after a warm-up cycle:`);
    const r1 = (v: number): string => String(Math.round(v * 10) / 10);
    print(`  ${'resource'.padEnd(14)} ${'before'.padStart(8)}    ${'after'.padStart(8)}  growth  (with a pod running)`);
    for (const k of Object.keys(before) as Array<keyof SoakSample>) {
      const d = after[k] - before[k];
      print(`  ${k.padEnd(14)} ${r1(before[k]).padStart(8)} -> ${r1(after[k]).padStart(8)}  ${`${d >= 0 ? '+' : ''}${r1(d)}`.padStart(6)}  (${r1(during[k])})`);
    }
    result = { before, during, after };
  });
  if (!result) throw new Error('soak did not run');
  return result;
}

if (require.main === module) {
  const n = Number(process.argv[2] ?? 1000);
  soak(n).catch((err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
