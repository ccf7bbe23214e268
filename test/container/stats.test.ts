// The CRI stats RPCs against a real pod on a CNI bridge: a container that
// burns CPU and one that holds 32 MiB, checked against the cgroup files and
// the pod netns's /proc/net/dev read independently (nsenter), with filters.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { parseNetDev } from '../../src/network/netdev';
import { TestNetwork } from '../network/net_helpers';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

const MiB = 1024n * 1024n;
const readBig = (f: string): bigint => BigInt(fs.readFileSync(f, 'utf8').trim());
function memStat(dir: string, key: string): bigint {
  const line = fs.readFileSync(path.join(dir, 'memory.stat'), 'utf8').split('\n').find((l) => l.startsWith(key + ' '));
  return BigInt(line?.split(' ')[1] ?? '0');
}

describe('CRI stats: a real pod and containers against the cgroup files and /proc/net/dev', function () {
  this.timeout(180_000);
  let fx: ContainerFixture;
  let net: TestNetwork;
  let podId: string;
  let hostPodId: string;
  let burn: string;
  let hold: string;
  const parent = `/berth-statstest-${randomBytes(3).toString('hex')}`;
  const rt = () => fx.berthd.cri.runtime;

  before(async () => {
    net = new TestNetwork();
    net.writeConflist();
    fx = await startContainerFixture({ cniConfDir: net.confDir });
    const cfg = podConfig(fx, { labels: { tier: 'stats' }, linux: { cgroupParent: `${parent}/podnet` } });
    podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    const run = async (name: string, command: string[], labels: Record<string, string>) => {
      const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, name, { command, labels }), sandboxConfig: cfg });
      await rt().StartContainer({ containerId });
      return containerId;
    };
    burn = await run('burn', ['sh', '-c', 'while :; do :; done'], { role: 'burn' });
    // A 32 MiB shell variable, held while it sleeps (in a loop: a last command would be exec'd, freeing it).
    hold = await run('hold', ['sh', '-c', 'x=$(head -c 33554432 /dev/zero | tr "\\0" a); while :; do sleep 3600; done'], { role: 'hold' });
    const hostCfg = podConfig(fx, { linux: { cgroupParent: `${parent}/podhost`, securityContext: { namespaceOptions: { network: 'NODE' } } } });
    hostPodId = (await rt().RunPodSandbox({ config: hostCfg })).podSandboxId;
  });
  after(async () => {
    await fx?.cleanup();
    await net?.cleanup();
    for (const c of ['memory', 'cpuacct', 'cpu', 'pids', 'cpuset', 'blkio', 'devices', 'freezer', 'systemd', 'unified']) {
      for (const d of ['podnet', 'podhost', 'podfds', '']) {
        try {
          fs.rmdirSync(path.join('/sys/fs/cgroup', c, parent, d));
        } catch {
          // not there, or already gone
        }
      }
    }
  });

  it('container CPU: usage agrees with cpuacct.usage and usage_nano_cores is the rate between the last two samples', async () => {
    const file = path.join('/sys/fs/cgroup/cpuacct', parent, 'podnet', burn, 'cpuacct.usage');
    const before = readBig(file);
    const a = (await rt().ContainerStats({ containerId: burn })).stats;
    await new Promise((r) => setTimeout(r, 1000));
    const b = (await rt().ContainerStats({ containerId: burn })).stats;
    const after = readBig(file);
    const ua = BigInt(a?.cpu?.usageCoreNanoSeconds?.value ?? '0');
    const ub = BigInt(b?.cpu?.usageCoreNanoSeconds?.value ?? '0');
    assert.ok(before <= ua && ua <= ub && ub <= after, `cgroup ${before}..${after}, CRI ${ua}, ${ub}`);
    const dt = BigInt(b?.cpu?.timestamp ?? '0') - BigInt(a?.cpu?.timestamp ?? '0');
    assert.ok(dt > 0n);
    const expected = ((ub - ua) * 1_000_000_000n) / dt;
    assert.equal(b?.cpu?.usageNanoCores?.value, expected.toString());
    assert.ok(ub > ua, 'a busy loop uses CPU');
    assert.ok(expected <= 1_050_000_000n, `one busy loop uses at most one core: ${expected}`);
  });

  it('container memory: working set = usage - total_inactive_file, RSS, page faults and available bytes agree with memory.stat', async () => {
    const dir = path.join('/sys/fs/cgroup/memory', parent, 'podnet', hold);
    await waitFor('32 MiB held', async () => (memStat(dir, 'total_rss') >= 32n * MiB ? true : undefined), 60_000);
    await new Promise((r) => setTimeout(r, 300)); // settled: the shell only sleeps now
    const s = (await rt().ContainerStats({ containerId: hold })).stats;
    const usage = readBig(path.join(dir, 'memory.usage_in_bytes'));
    const ws = usage - memStat(dir, 'total_inactive_file');
    const near = (x: string | undefined, y: bigint, what: string) => {
      const d = BigInt(x ?? '-1') - y;
      assert.ok(d >= -MiB && d <= MiB, `${what}: CRI ${x}, cgroup ${y}`);
    };
    near(s?.memory?.workingSetBytes?.value, ws, 'working set');
    near(s?.memory?.usageBytes?.value, usage, 'usage');
    near(s?.memory?.rssBytes?.value, memStat(dir, 'total_rss'), 'rss');
    assert.ok(BigInt(s?.memory?.workingSetBytes?.value ?? '0') >= 32n * MiB);
    const faults = BigInt(s?.memory?.pageFaults?.value ?? '0');
    assert.ok(faults > 0n && faults <= memStat(dir, 'total_pgfault'));
    assert.match(s?.memory?.majorPageFaults?.value ?? '', /^\d+$/);
    assert.equal(s?.memory?.availableBytes, null, 'no limit, no available figure');
    assert.ok(BigInt(s?.memory?.timestamp ?? '0') > 0n);
  });

  it('pod: network per interface agrees with the netns /proc/net/dev, process count with pids.current', async () => {
    const netns = path.join(fx.berthd.state, 'pods', podId, 'ns', 'net');
    const ip = (await rt().PodSandboxStatus({ podSandboxId: podId, verbose: false })).status?.network?.ip;
    assert.ok(ip);
    // Traffic into the pod: UDP to a closed port (rx), answered by ICMP unreachable (tx).
    const sock = dgram.createSocket('udp4');
    for (let i = 0; i < 20; i++) await new Promise<void>((r) => sock.send(Buffer.alloc(1000), 9, ip, () => r()));
    sock.close();
    const read = () => parseNetDev(execFileSync('nsenter', [`--net=${netns}`, 'cat', '/proc/net/dev'], { encoding: 'utf8' }));
    const before = read().find((i) => i.name === 'eth0');
    const s = (await rt().PodSandboxStats({ podSandboxId: podId })).stats?.linux;
    const after = read().find((i) => i.name === 'eth0');
    const eth0 = s?.network?.defaultInterface;
    assert.equal(eth0?.name, 'eth0');
    for (const [k, f] of [['rxBytes', 'rxBytes'], ['txBytes', 'txBytes'], ['rxErrors', 'rxErrors'], ['txErrors', 'txErrors']] as const) {
      const v = BigInt(eth0?.[k]?.value ?? '-1');
      assert.ok(BigInt(before?.[f] ?? '0') <= v && v <= BigInt(after?.[f] ?? '0'), `${k}: ${v} not within ${before?.[f]}..${after?.[f]}`);
    }
    assert.ok(BigInt(eth0?.rxBytes?.value ?? '0') >= 20_000n, 'the datagrams were counted');
    assert.deepEqual(s?.network?.interfaces.map((i) => i.name), [], 'lo is left out; eth0 is the default');
    const pids = readBig(path.join('/sys/fs/cgroup/pids', parent, 'podnet', 'pids.current'));
    assert.equal(s?.process?.processCount?.value, pids.toString());
    assert.ok(pids >= 3n, 'both shells and the sleep/loop');
    // The pod's CPU covers its containers'.
    assert.ok(BigInt(s?.cpu?.usageCoreNanoSeconds?.value ?? '0') >= readBig(path.join('/sys/fs/cgroup/cpuacct', parent, 'podnet', burn, 'cpuacct.usage')) / 2n);
    assert.deepEqual(s?.containers.map((c) => c.attributes?.id).sort(), [burn, hold].sort());
  });

  it('a host-network pod reports no network figures, as containerd does', async () => {
    const s = (await rt().PodSandboxStats({ podSandboxId: hostPodId })).stats?.linux;
    assert.equal(s?.network, null);
    assert.ok(s?.memory);
  });

  it('filters: ListContainerStats by id prefix, pod and labels; ListPodSandboxStats by id and labels', async () => {
    const ids = async (f: object) => (await rt().ListContainerStats({ filter: f })).stats.map((x) => x.attributes?.id).sort();
    assert.deepEqual(await ids({ id: burn.slice(0, 12) }), [burn]);
    assert.deepEqual(await ids({ podSandboxId: podId.slice(0, 12) }), [burn, hold].sort());
    assert.deepEqual(await ids({ labelSelector: { role: 'hold' } }), [hold]);
    assert.deepEqual(await ids({ podSandboxId: hostPodId }), []);
    const pods = async (f: object) => (await rt().ListPodSandboxStats({ filter: f })).stats.map((x) => x.attributes?.id);
    assert.deepEqual(await pods({ labelSelector: { tier: 'stats' } }), [podId]);
    assert.deepEqual(await pods({ id: hostPodId.slice(0, 10) }), [hostPodId]);
    assert.ok((await pods({})).includes(podId));
  });

  it("keeps a running container's cgroup files open between ListContainerStats calls, and closes them when it stops", async () => {
    const cfg = podConfig(fx, { linux: { cgroupParent: `${parent}/podfds`, securityContext: { namespaceOptions: { network: 'NODE' } } } });
    const pod = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    const { containerId: id } = await rt().CreateContainer({ podSandboxId: pod, config: containerConfig(fx.image, 'fds', {}), sandboxConfig: cfg });
    await rt().StartContainer({ containerId: id });
    const info = JSON.parse((await rt().ContainerStatus({ containerId: id, verbose: true })).info.info) as { runtimeSpec: { linux: { cgroupsPath: string } } };
    const cgroup = info.runtimeSpec.linux.cgroupsPath;
    const pid = fx.berthd.proc?.pid;
    assert.ok(pid && cgroup);
    const held = (): number =>
      fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).includes(`${cgroup}/`);
        } catch {
          return false;
        }
      }).length;
    await rt().ListContainerStats({ filter: { id } });
    const open = held();
    assert.ok(open > 0, 'the cgroup files are held open');
    await rt().ListContainerStats({ filter: { id } });
    assert.equal(held(), open, 'and read again through the same descriptors');
    await rt().StopContainer({ containerId: id, timeout: 0 });
    // The exit is recorded (and the files closed) as the shim reports it, just after StopContainer returns.
    await waitFor('the cgroup files closed', async () => (held() === 0 ? true : undefined), 5000);
    await rt().StopPodSandbox({ podSandboxId: pod });
    await rt().RemovePodSandbox({ podSandboxId: pod });
  });

  it('ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor series that agree with the cgroup files and /proc/net/dev (crictl metricsp)', async () => {
    const { descriptors } = await rt().ListMetricDescriptors({});
    const byName = new Map(descriptors.map((d) => [d.name, d]));
    for (const n of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total', 'container_network_transmit_errors_total', 'container_processes']) {
      assert.ok(byName.has(n), `descriptor ${n}`);
    }
    assert.deepEqual(byName.get('container_network_receive_bytes_total')?.labelKeys, ['container', 'id', 'image', 'name', 'namespace', 'pod', 'interface']);
    const { podMetrics } = await rt().ListPodSandboxMetrics({});
    const mine = podMetrics.find((p) => p.podSandboxId === podId);
    assert.ok(mine);
    assert.ok(podMetrics.some((p) => p.podSandboxId === hostPodId));
    const all = [...mine.metrics, ...mine.containerMetrics.flatMap((c) => c.metrics)];
    for (const m of all) {
      const d = byName.get(m.name);
      assert.ok(d, `metric ${m.name} has a descriptor`);
      assert.equal(m.labelValues.length, d.labelKeys.length, m.name);
    }
    const value = (ms: typeof all, name: string, extra: (v: string[]) => boolean = () => true) => {
      const m = ms.find((x) => x.name === name && extra(x.labelValues));
      assert.ok(m, `no ${name}`);
      return BigInt(m.value?.value ?? '-1');
    };
    const holdMetrics = mine.containerMetrics.find((c) => c.containerId === hold)?.metrics ?? [];
    const dir = path.join('/sys/fs/cgroup/memory', parent, 'podnet', hold);
    const ws = readBig(path.join(dir, 'memory.usage_in_bytes')) - memStat(dir, 'total_inactive_file');
    const got = value(holdMetrics, 'container_memory_working_set_bytes');
    assert.ok(got - ws <= MiB && ws - got <= MiB, `working set ${got} vs ${ws}`);
    assert.equal(holdMetrics.find((m) => m.name === 'container_memory_working_set_bytes')?.metricType, 'GAUGE');
    const burnMetrics = mine.containerMetrics.find((c) => c.containerId === burn)?.metrics ?? [];
    const cpuS = value(burnMetrics, 'container_cpu_usage_seconds_total');
    const cpuFile = readBig(path.join('/sys/fs/cgroup/cpuacct', parent, 'podnet', burn, 'cpuacct.usage')) / 1_000_000_000n;
    assert.ok(cpuS <= cpuFile && cpuS + 1n >= cpuFile, `cpu seconds ${cpuS} vs ${cpuFile}`);
    assert.equal(burnMetrics.find((m) => m.name === 'container_cpu_usage_seconds_total')?.labelValues.slice(0, 2).join(), `burn,${burn}`);
    const netns = path.join(fx.berthd.state, 'pods', podId, 'ns', 'net');
    const eth0 = parseNetDev(execFileSync('nsenter', [`--net=${netns}`, 'cat', '/proc/net/dev'], { encoding: 'utf8' })).find((i) => i.name === 'eth0');
    const rx = value(mine.metrics, 'container_network_receive_bytes_total', (v) => v[6] === 'eth0');
    assert.ok(rx > 0n && rx <= BigInt(eth0?.rxBytes ?? '0'), `rx ${rx} vs ${eth0?.rxBytes}`);
    // PSI where the kernel keeps it for the container (the hybrid host's unified mirror), absent where not.
    const pressure = path.join('/sys/fs/cgroup/unified', parent, 'podnet', burn, 'cpu.pressure');
    const psi = burnMetrics.find((m) => m.name === 'container_pressure_cpu_waiting_seconds_total');
    if (fs.existsSync(pressure)) {
      const total = BigInt(/^some .*total=(\d+)/m.exec(fs.readFileSync(pressure, 'utf8'))?.[1] ?? '0') / 1_000_000n;
      const v = BigInt(psi?.value?.value ?? '-1');
      assert.ok(v <= total && v + 1n >= total, `cpu pressure ${v} vs ${total}`);
    } else {
      assert.equal(psi, undefined);
    }
    // The series as the kubelet would serve them pass Prometheus' lint.
    const text = descriptors
      .map((d) => {
        const ms = all.filter((m) => m.name === d.name);
        const type = ms[0] ? ms[0].metricType.toLowerCase() : 'untyped';
        const lines = ms.map((m) => `${d.name}{${d.labelKeys.map((k, i) => `${k}=${JSON.stringify(m.labelValues[i])}`).join(',')}} ${m.value?.value}`);
        return [`# HELP ${d.name} ${d.help}`, `# TYPE ${d.name} ${type}`, ...lines].join('\n');
      })
      .join('\n');
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text + '\n', encoding: 'utf8' });
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  });
});
