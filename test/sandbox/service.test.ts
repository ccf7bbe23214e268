// The sandbox service end to end on the real kernel: pinned namespaces,
// sysctls, shm, pod files, cgroups, stop/remove, restart reconciliation and
// rollback of failed creations.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { readMountInfoSync as readMountInfo } from '../../src/util/mountinfo';
import type { PodNetworkRef, PodNetworkSpec } from '../../src/network/cni';
import type { PodNetwork } from '../../src/sandbox/cni_adapter';
import type { SandboxService } from '../../src/sandbox/service';
import { defaultsForPod, podNetworkSysctls } from '../../src/sandbox/network_sysctls';
import { nsenter, podConfig, runPod, SandboxFixture } from './fixture';
import { podFilter, type PodFilterFields } from '../../src/cri/filters';

function isMountpoint(p: string, fstype?: string): boolean {
  return readMountInfo().some((m) => m.mountPoint === path.resolve(p) && (!fstype || m.fsType === fstype));
}

async function rejects(p: Promise<unknown>, kind: string, re: RegExp): Promise<BerthError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected ${kind}`);
}

function procAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('sandbox service', function () {
  this.timeout(30_000);
  const fx = new SandboxFixture();
  let svc: SandboxService;

  before(async () => {
    await fx.init();
    svc = await fx.service();
  });

  after(async () => {
    const leftovers = await fx.cleanup();
    assert.deepEqual(leftovers, [], 'the tests left things behind');
  });

  /** Asserts that nothing of the pod remains anywhere. */
  function assertGone(id: string, cgroupSub?: string): void {
    assert.deepEqual(
      fx.mountsUnderDir().filter((m) => m.includes(id)),
      [],
    );
    assert.equal(fs.existsSync(path.join(fx.config.state, 'pods', id)), false, 'state dir left');
    assert.equal(fs.existsSync(path.join(fx.config.root, 'pods', id)), false, 'files dir left');
    assert.equal(fs.existsSync(path.join(fx.config.root, 'pods', `${id}.json`)), false, 'record left');
    if (cgroupSub) for (const d of fx.cgroupDirs(cgroupSub)) assert.equal(fs.existsSync(d), false, `cgroup ${d} left`);
  }

  it('runs a pod with pinned namespaces, hostname, sysctls, DNS, shm, cgroup and log dir', async () => {
    const logDir = path.join(fx.dir, 'logs', 'pod-a');
    const cfg = podConfig(
      {
        hostname: 'pod-a-host',
        logDirectory: logDir,
        dnsConfig: { servers: ['10.96.0.10', '10.96.0.11'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
        annotations: { note: 'x' },
      },
      'pod-a',
    );
    cfg.linux!.sysctls = { 'net.ipv4.ip_unprivileged_port_start': '80', 'kernel.shmmni': '2048' };
    cfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
    const id = await runPod(svc, cfg, '');
    assert.match(id, /^[0-9a-f]{64}$/);
    const rec = svc.get(id);
    assert.equal(rec.state, 'ready');
    assert.equal(rec.runtimeHandler, 'runc');

    // Namespace files are nsfs binds of new namespaces.
    for (const ns of ['net', 'ipc', 'uts', 'pid'] as const) {
      const file = rec.nsPaths[ns];
      assert.ok(file && isMountpoint(file, 'nsfs'), `${ns} is not pinned`);
    }
    const hostNet = fs.readlinkSync('/proc/self/ns/net');
    const podNet = nsenter([`--net=${rec.nsPaths.net}`, 'readlink', '/proc/self/ns/net']);
    assert.match(podNet, /^net:\[\d+\]$/);
    assert.notEqual(podNet, hostNet);
    assert.notEqual(nsenter([`--ipc=${rec.nsPaths.ipc}`, 'readlink', '/proc/self/ns/ipc']), fs.readlinkSync('/proc/self/ns/ipc'));
    assert.equal(nsenter([`--uts=${rec.nsPaths.uts}`, 'hostname']), 'pod-a-host');
    // berth-pinns brought the loopback up (no CNI loopback plugin runs for it).
    assert.match(nsenter([`--net=${rec.nsPaths.net}`, 'ip', '-o', 'addr', 'show', 'dev', 'lo']), /inet 127\.0\.0\.1\/8/);
    assert.match(nsenter([`--net=${rec.nsPaths.net}`, 'ip', '-o', 'link', 'show', 'lo']), /[<,]UP[,>]/);
    assert.equal(nsenter([`--net=${rec.nsPaths.net}`, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start']), '80');
    assert.equal(nsenter([`--ipc=${rec.nsPaths.ipc}`, 'cat', '/proc/sys/kernel/shmmni']), '2048');
    // ...and the host's values are untouched.
    assert.notEqual(fs.readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim(), '2048');

    // berth-pause is PID 1 of the pod PID namespace, inside the pod cgroup.
    assert.ok(rec.pausePid && procAlive(rec.pausePid));
    assert.equal(fs.readlinkSync(`/proc/${rec.pausePid}/ns/pid`), nsenter([`--pid=${rec.nsPaths.pid}`, '--', 'readlink', '/proc/self/ns/pid']));
    const memCg = fs.readFileSync(`/proc/${rec.pausePid}/cgroup`, 'utf8');
    assert.match(memCg, new RegExp(`memory:${fx.cgroupParent}/poduid-pod-a-`));

    // /dev/shm tmpfs.
    const shm = readMountInfo().find((m) => m.mountPoint === rec.shmPath);
    assert.ok(shm && shm.fsType === 'tmpfs', 'shm not mounted');
    const shmLine = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${rec.shmPath} `))!;
    assert.match(shmLine, /nosuid,nodev,noexec/);
    assert.match(shmLine, /size=65536k/);

    // Pod files.
    assert.equal(
      fs.readFileSync(rec.resolvConfFile, 'utf8'),
      'search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n',
    );
    assert.equal(fs.readFileSync(rec.hostnameFile, 'utf8'), 'pod-a-host\n');
    assert.match(fs.readFileSync(rec.hostsFile, 'utf8'), /^127\.0\.0\.1\tlocalhost$/m);
    assert.ok(fs.statSync(logDir).isDirectory());

    // Cgroup in every hierarchy.
    const sub = `poduid-pod-a-${process.pid}`;
    for (const d of fx.cgroupDirs(sub)) assert.ok(fs.existsSync(d), `missing cgroup ${d}`);
    const first = svc.usage(rec);
    assert.match(first.memoryUsageBytes ?? '', /^\d+$/);
    assert.match(first.cpuUsageNs ?? '', /^\d+$/);
    assert.equal(first.cpuNanoCores, undefined, 'a rate needs two samples');
    await new Promise((r) => setTimeout(r, 20));
    assert.match(svc.usage(rec).cpuNanoCores ?? '', /^\d+$/, 'the pod CPU rate (usage_nano_cores) from the second sample on');

    // Stop: namespaces and shm go, berth-pause dies, the pod stays (NOTREADY).
    await svc.stop(id);
    assert.equal(svc.get(id).state, 'notready');
    assert.deepEqual(fx.mountsUnderDir().filter((m) => m.includes(id)), []);
    assert.equal(procAlive(rec.pausePid), false);
    await svc.stop(id); // idempotent
    await svc.stop(id.slice(0, 12));

    await svc.remove(id);
    assert.throws(() => svc.get(id), /not found/);
    assertGone(id, sub);
    await svc.remove(id); // idempotent
    await svc.stop(id);
  });

  it('copies the host resolv.conf when the pod has no DNS config, and honours host namespaces', async () => {
    const cfg = podConfig({}, 'hostns');
    cfg.hostname = ''; // on the host network the pod has the node's name
    cfg.linux!.securityContext!.namespaceOptions = { network: 'NODE', pid: 'NODE', ipc: 'NODE', targetId: '', usernsOptions: null };
    const id = await runPod(svc, cfg, 'runc');
    const rec = svc.get(id);
    assert.deepEqual(rec.nsPaths, {});
    assert.equal(rec.shmPath, undefined);
    assert.equal(rec.pausePid, undefined);
    assert.deepEqual(fx.mountsUnderDir().filter((m) => m.includes(id)), []);
    let hostResolv = '';
    try {
      hostResolv = fs.readFileSync('/etc/resolv.conf', 'utf8');
    } catch {
      // no host resolv.conf: the pod gets an empty one
    }
    assert.equal(fs.readFileSync(rec.resolvConfFile, 'utf8'), hostResolv);
    assert.equal(fs.readFileSync(rec.hostnameFile, 'utf8').trim(), execFileSync('hostname', { encoding: 'utf8' }).trim());

    // A net.* sysctl on the host network would change the host: refused.
    const bad = podConfig({}, 'hostns-sysctl');
    bad.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    bad.linux!.sysctls = { 'net.ipv4.ip_forward': '1' };
    await rejects(runPod(svc, bad, ''), 'INVALID_ARGUMENT', /host network/);
    const notNamespaced = podConfig({}, 'vm-sysctl');
    notNamespaced.linux!.sysctls = { 'vm.swappiness': '1' };
    await rejects(runPod(svc, notNamespaced, ''), 'INVALID_ARGUMENT', /not namespaced/);
    await svc.remove(id);
    assertGone(id);
  });

  it('refuses a second pod with the same metadata, naming the first', async () => {
    const cfg = podConfig({}, 'dup');
    const [a, b] = await Promise.allSettled([runPod(svc, cfg, ''), runPod(svc, cfg, '')]);
    const ok = [a, b].filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<string>[];
    const failed = [a, b].filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(ok.length, 1);
    assert.equal(failed.length, 1);
    const err = failed[0].reason as BerthError;
    assert.equal(err.kind, 'ALREADY_EXISTS');
    assert.ok(err.message.includes(ok[0].value), err.message);
    // Another attempt is a different sandbox.
    const next = await runPod(svc, { ...cfg, metadata: { ...cfg.metadata!, attempt: 1 } }, '');
    await svc.remove(ok[0].value);
    // Once removed, the name is free again.
    const again = await runPod(svc, cfg, '');
    await svc.remove(again);
    await svc.remove(next);
  });

  it('runs a minimal (crictl-style) config with every namespace per pod, and reports NOTREADY once berth-pause dies', async () => {
    const id = await runPod(svc, podConfig({ linux: null, hostname: '' }, 'minimal'), '');
    const rec = svc.get(id);
    assert.deepEqual(Object.keys(rec.nsPaths).sort(), ['ipc', 'net', 'pid', 'uts']);
    assert.equal(svc.criState(rec), 'SANDBOX_READY');
    process.kill(rec.pausePid!, 'SIGKILL');
    for (let i = 0; i < 100 && procAlive(rec.pausePid!); i++) await new Promise((r) => setTimeout(r, 10));
    // PodSandboxStatus's path: checked now.
    await svc.checkPause(rec);
    assert.equal(svc.criState(rec), 'SANDBOX_NOTREADY');
    assert.deepEqual(svc.list(podFilter(svc, { id: '', state: { state: 'SANDBOX_NOTREADY' }, labelSelector: {} })).map((r) => r.id), [id]);
    assert.deepEqual(svc.list(podFilter(svc, { id: '', state: { state: 'SANDBOX_READY' }, labelSelector: {} })).map((r) => r.id), []);
    await svc.remove(id);
    assertGone(id);
  });

  it("gives pods with their own network containerd 2.x's unprivileged ports and ICMP, unless the pod or the config says otherwise", async () => {
    const sysctl = (rec: { nsPaths: { net?: string } }, name: string) => nsenter([`--net=${rec.nsPaths.net}`, 'cat', `/proc/sys/net/ipv4/${name}`]).replace(/\s+/g, ' ');
    const plain = svc.get(await runPod(svc, podConfig({}, 'unpriv-defaults'), ''));
    assert.equal(sysctl(plain, 'ip_unprivileged_port_start'), '0');
    assert.equal(sysctl(plain, 'ping_group_range'), '0 2147483647');
    const own = podConfig({}, 'unpriv-own');
    own.linux!.sysctls = { 'net.ipv4.ip_unprivileged_port_start': '443' };
    const ownRec = svc.get(await runPod(svc, own, ''));
    assert.equal(sysctl(ownRec, 'ip_unprivileged_port_start'), '443', "the pod's own value wins");
    assert.equal(sysctl(ownRec, 'ping_group_range'), '0 2147483647');
    const hostPort = fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim();
    const hostNet = podConfig({ hostname: '' }, 'unpriv-hostnet');
    hostNet.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    await runPod(svc, hostNet, '');
    assert.equal(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim(), hostPort, 'the host network is never changed');
    fx.config.runtime.enable_unprivileged_ports = false;
    fx.config.runtime.enable_unprivileged_icmp = false;
    try {
      const offSvc = await fx.service();
      const offRec = offSvc.get(await runPod(offSvc, podConfig({}, 'unpriv-off'), ''));
      assert.equal(sysctl(offRec, 'ip_unprivileged_port_start'), '1024', 'the kernel default');
      assert.equal(sysctl(offRec, 'ping_group_range'), '1 0', 'the kernel default');
      await offSvc.stop(offRec.id);
      await offSvc.remove(offRec.id);
    } finally {
      fx.config.runtime.enable_unprivileged_ports = true;
      fx.config.runtime.enable_unprivileged_icmp = true;
    }
    // In a user namespace the range is the pod's mapped groups (the kernel refuses unmapped ones).
    const userns = { uids: [{ containerId: 0, hostId: 300000, length: 65536 }], gids: [{ containerId: 0, hostId: 310000, length: 65536 }] };
    assert.deepEqual(defaultsForPod(podNetworkSysctls(fx.config), userns), {
      'net.ipv4.ip_unprivileged_port_start': '0',
      'net.ipv4.ping_group_range': '0 65535',
    });
    for (const r of svc.list(podFilter(svc, { id: '', labelSelector: {} }))) {
      if (!/unpriv-/.test(r.metadata.name)) continue;
      await svc.stop(r.id);
      await svc.remove(r.id);
    }
  });

  it('lists a pod NOTREADY once its berth-pause dies, without anyone asking for its status (background check)', async () => {
    const ready = { id: '', state: { state: 'SANDBOX_READY' as const }, labelSelector: {} };
    const keep = await runPod(svc, podConfig({ linux: null, hostname: '' }, 'bg-keep'), '');
    const id = await runPod(svc, podConfig({ linux: null, hostname: '' }, 'bg-dies'), '');
    const listed = (): string[] => svc.list(podFilter(svc, ready)).map((r) => r.id);
    assert.deepEqual(listed().filter((x) => x === id || x === keep).sort(), [id, keep].sort());
    process.kill(svc.get(id).pausePid!, 'SIGKILL');
    let states: string[] = [];
    for (let i = 0; i < 100; i++) {
      states = svc.list(podFilter(svc, { id, state: null, labelSelector: {} })).map((r) => svc.criState(r));
      if (states[0] === 'SANDBOX_NOTREADY') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(states, ['SANDBOX_NOTREADY']);
    assert.ok(!listed().includes(id), 'the pod with a dead pause is not listed READY');
    assert.ok(listed().includes(keep), 'the other pod stays READY');
    // Its record still says ready (nothing stopped it); only the answer changed, and stays changed.
    assert.equal(svc.get(id).state, 'ready');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(svc.criState(svc.get(id)), 'SANDBOX_NOTREADY');
    await svc.remove(id);
    await svc.remove(keep);
    assertGone(id);
  });

  it('rejects an unknown runtime handler and leaves nothing', async () => {
    const before = fs.readdirSync(path.join(fx.config.root, 'pods'));
    await rejects(runPod(svc, podConfig({}, 'nohandler'), 'no-such-runtime'), 'NOT_FOUND', /runtime handler "no-such-runtime" is not configured/);
    assert.deepEqual(fs.readdirSync(path.join(fx.config.root, 'pods')), before);
  });

  it('filters the list by id prefix, state and labels', async () => {
    const a = await runPod(svc, podConfig({ labels: { tier: 'web', app: 'x' } }, 'flt-a'), '');
    const b = await runPod(svc, podConfig({ labels: { tier: 'db', app: 'x' } }, 'flt-b'), '');
    await svc.stop(b);
    const ids = (f: PodFilterFields | null): string[] => svc.list(podFilter(svc, f)).map((r) => r.id);
    assert.deepEqual(ids({ id: a.slice(0, 10), state: null, labelSelector: {} }), [a]);
    assert.deepEqual(ids({ id: '', state: { state: 'SANDBOX_READY' }, labelSelector: {} }), [a]);
    assert.deepEqual(ids({ id: '', state: { state: 'SANDBOX_NOTREADY' }, labelSelector: {} }), [b]);
    assert.deepEqual(ids({ id: '', state: null, labelSelector: { app: 'x' } }).sort(), [a, b].sort());
    assert.deepEqual(ids({ id: '', state: null, labelSelector: { app: 'x', tier: 'db' } }), [b]);
    assert.deepEqual(ids({ id: '', state: null, labelSelector: { tier: 'cache' } }), []);
    assert.deepEqual(ids(null).slice(-2), [a, b], 'oldest first');
    await svc.remove(a);
    await svc.remove(b);
  });

  it('rolls back everything when a sysctl cannot be set', async () => {
    const cfg = podConfig({ logDirectory: '' }, 'badsysctl');
    cfg.linux!.sysctls = { 'net.ipv4.no_such_sysctl': '1' };
    cfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
    const recordsBefore = fs.readdirSync(path.join(fx.config.root, 'pods'));
    const err = await rejects(runPod(svc, cfg, ''), 'INTERNAL', /pin the pod namespaces.*sysctl net\.ipv4\.no_such_sysctl/);
    assert.match(err.message, /badsysctl/);
    assert.deepEqual(fs.readdirSync(path.join(fx.config.root, 'pods')), recordsBefore);
    assert.deepEqual(fs.readdirSync(path.join(fx.config.state, 'pods')).filter((n) => !n.startsWith('.')), []);
    assert.deepEqual(fx.mountsUnderDir().filter((m) => m !== path.join(fx.config.state, 'pods')), []);
    for (const d of fx.cgroupDirs('poduid-badsysctl-' + process.pid)) assert.equal(fs.existsSync(d), false, `cgroup ${d} left`);
    // The name was released: the pod can be created once fixed.
    cfg.linux!.sysctls = {};
    await svc.remove(await runPod(svc, cfg, ''));
  });

  it('rolls back the steps run beside a failing one: cgroup, directories, namespaces, files', async () => {
    const blocker = path.join(fx.config.root, `not-a-dir-${process.pid}`);
    fs.writeFileSync(blocker, '');
    try {
      const cfg = podConfig({ logDirectory: path.join(blocker, 'logs') }, 'badlogdir');
      cfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
      const recordsBefore = fs.readdirSync(path.join(fx.config.root, 'pods'));
      await rejects(runPod(svc, cfg, ''), 'INTERNAL', /create the log directory .*not-a-dir/);
      assert.deepEqual(fs.readdirSync(path.join(fx.config.root, 'pods')), recordsBefore);
      assert.deepEqual(fs.readdirSync(path.join(fx.config.state, 'pods')).filter((n) => !n.startsWith('.')), []);
      assert.deepEqual(fx.mountsUnderDir().filter((m) => m !== path.join(fx.config.state, 'pods')), []);
      for (const d of fx.cgroupDirs('poduid-badlogdir-' + process.pid)) assert.equal(fs.existsSync(d), false, `cgroup ${d} left`);
      cfg.logDirectory = '';
      await svc.remove(await runPod(svc, cfg, ''));
    } finally {
      fs.rmSync(blocker, { force: true });
    }
  });

  it('rolls back when the network cannot be set up, and tears it down on stop', async () => {
    const calls: string[] = [];
    let fail = true;
    const network: PodNetwork = {
      async setupPodNetwork(pod: PodNetworkSpec, netnsPinned: Promise<void>) {
        await netnsPinned;
        calls.push(`setup ${pod.name} ${fs.existsSync(pod.netnsPath)}`);
        if (fail) throw new Error('no IP addresses available in range set');
        return { ips: ['10.88.0.7', 'fd00::7'] };
      },
      async teardownPodNetwork(pod: PodNetworkRef) {
        calls.push(`teardown ${pod.name}`);
      },
    };
    const containerCalls: string[] = [];
    const netSvc = await fx.service({
      network,
      containers: {
        stopContainersOfPod: async (id) => void containerCalls.push(`stop ${id}`),
        removeContainersOfPod: async (id) => void containerCalls.push(`remove ${id}`),
      },
    });
    const cfg = podConfig({}, 'netfail');
    await rejects(runPod(netSvc, cfg, ''), 'INTERNAL', /set up the pod network: no IP addresses/);
    assert.deepEqual(calls, ['setup netfail true', 'teardown netfail']);
    assert.deepEqual(netSvc.list().filter((r) => r.metadata.name === 'netfail'), []);
    assert.deepEqual(fx.mountsUnderDir().filter((m) => m !== path.join(fx.config.state, 'pods')), []);

    fail = false;
    calls.length = 0;
    const id = await runPod(netSvc, cfg, '');
    const rec = netSvc.get(id);
    assert.equal(rec.network.ip, '10.88.0.7');
    assert.deepEqual(rec.network.additionalIps, ['fd00::7']);
    assert.match(fs.readFileSync(rec.hostsFile, 'utf8'), /^10\.88\.0\.7\tnetfail$/m);
    // A failing teardown fails StopPodSandbox and leaves the pod READY, so the kubelet retries.
    network.teardownPodNetwork = async () => {
      throw new Error('plugin bridge timed out');
    };
    await rejects(netSvc.stop(id), 'INTERNAL', /tear down the network.*plugin bridge timed out/);
    assert.equal(netSvc.criState(netSvc.get(id)), 'SANDBOX_READY');
    network.teardownPodNetwork = async (pod: PodNetworkRef) => void calls.push(`teardown ${pod.name}`);
    containerCalls.length = 0;
    // Removing a ready pod stops it first: containers stopped, network torn down (once), containers removed.
    await netSvc.remove(id);
    assert.deepEqual(calls, ['setup netfail true', 'teardown netfail']);
    assert.deepEqual(containerCalls, [`stop ${id}`, `remove ${id}`]);
    assertGone(id);
  });

  it('reconciles at start: reloads pods, marks pods whose namespaces vanished NOTREADY, rolls back half-created ones', async () => {
    const keep = await runPod(svc, podConfig({}, 'survivor'), '');
    const lostCfg = podConfig({}, 'lost');
    lostCfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
    const lost = await runPod(svc, lostCfg, '');
    const halfCfg = podConfig({}, 'half');
    halfCfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
    const half = await runPod(svc, halfCfg, '');
    const halfRec = svc.get(half);
    const halfPause = halfRec.pausePid!;

    // "Reboot" for one pod: its namespaces are unpinned and berth-pause is gone.
    const lostRec = svc.get(lost);
    execFileSync(path.join(__dirname, '..', '..', '..', 'build', 'berth-pinns'), ['unpin', '--dir', path.join(lostRec.stateDir, 'ns')]);
    process.kill(lostRec.pausePid!, 'SIGKILL');
    // "berthd killed mid-RunPodSandbox" for another: its record still says creating.
    const recordFile = path.join(fx.config.root, 'pods', `${half}.json`);
    // Killed right after berth-pinns ran: the record has neither the namespaces nor the pause PID.
    fs.writeFileSync(recordFile, JSON.stringify({ ...halfRec, state: 'creating', nsPaths: {}, pausePid: undefined }));
    // And leftovers of a pod whose record never got written.
    const orphan = 'f'.repeat(64);
    fs.mkdirSync(path.join(fx.config.state, 'pods', orphan, 'ns'), { recursive: true });

    const restarted = await fx.service();
    assert.equal(restarted.get(keep).state, 'ready');
    assert.equal(restarted.get(lost).state, 'notready');
    assert.equal(restarted.find(half), undefined);
    assertGone(half, `poduid-half-${process.pid}`);
    assert.equal(procAlive(halfPause), false, 'berth-pause of the half-created pod still runs');
    assert.equal(fs.existsSync(path.join(fx.config.state, 'pods', orphan)), false);
    // The reloaded pods keep their names reserved.
    await rejects(runPod(restarted, podConfig({ metadata: restarted.get(keep).metadata }), ''), 'ALREADY_EXISTS', new RegExp(keep));

    await restarted.remove(lost);
    await restarted.remove(keep);
    assertGone(lost);
    assertGone(keep);
    svc = restarted;
  });

  it('removes the directories beside a pod cgroup that is still busy, and finishes on the next RemovePodSandbox', async function () {
    this.timeout(20_000);
    const id = await runPod(svc, podConfig({}, 'busycg'), '');
    const rec = svc.get(id);
    const sub = `poduid-busycg-${process.pid}`;
    const pids = fx.cgroupDirs(sub).find((d) => d.includes('/pids/'));
    if (!pids) return this.skip(); // needs a cgroup v1 pids hierarchy to put a process in
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => holder.once('spawn', r));
      fs.writeFileSync(path.join(pids, 'cgroup.procs'), String(holder.pid));
      await assert.rejects(svc.remove(id), /busy|EBUSY/i);
      assert.equal(fs.existsSync(rec.stateDir), false, 'state dir removed beside the busy cgroup');
      assert.equal(fs.existsSync(rec.filesDir), false, 'files dir removed beside the busy cgroup');
      assert.ok(svc.find(id), 'the record stays for the retry');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    await svc.remove(id);
    assertGone(id, sub);
  });

  it('keeps a pod cgroup it did not create, and one still used by another attempt', async () => {
    // A cgroup made beforehand (as the kubelet does) is left alone.
    const kubeletMade = `${fx.cgroupParent}/kubepods/podk1`;
    const dirs = fx.cgroupDirs('kubepods/podk1');
    for (const d of dirs) fs.mkdirSync(d, { recursive: true });
    const cfg = podConfig({}, 'kubelet-cg');
    cfg.linux!.cgroupParent = kubeletMade;
    await svc.remove(await runPod(svc, cfg, ''));
    for (const d of dirs) assert.ok(fs.existsSync(d));
    for (const d of dirs) {
      fs.rmdirSync(d);
      fs.rmdirSync(path.dirname(d));
    }

    // Two attempts of one pod share the cgroup berth made: it goes with the last one.
    const c0 = podConfig({}, 'attempts');
    const a0 = await runPod(svc, c0, '');
    const a1 = await runPod(svc, { ...c0, metadata: { ...c0.metadata!, attempt: 1 } }, '');
    const sub = `poduid-attempts-${process.pid}`;
    await svc.remove(a0);
    for (const d of fx.cgroupDirs(sub)) assert.ok(fs.existsSync(d), 'removed while attempt 1 uses it');
    await svc.remove(a1);
    for (const d of fx.cgroupDirs(sub)) assert.equal(fs.existsSync(d), false);
  });

  it('makes <state>/pods a private mount when the state dir is on a shared mount, and undoes it on close', async () => {
    const shared = new SandboxFixture();
    await shared.init();
    fs.mkdirSync(shared.config.state, { recursive: true });
    execFileSync('mount', ['--bind', shared.config.state, shared.config.state]);
    execFileSync('mount', ['--make-shared', shared.config.state]);
    try {
      const s2 = await shared.service();
      const id = await runPod(s2, podConfig({}, 'shared'), '');
      const pods = path.join(shared.config.state, 'pods');
      const podsMount = readMountInfo().find((m) => m.mountPoint === pods);
      assert.ok(podsMount, '<state>/pods is not a mount');
      assert.equal(podsMount.optional.filter((o) => o.startsWith('shared:')).length, 0, 'still shared');
      const netMount = readMountInfo().find((m) => m.mountPoint === s2.get(id).nsPaths.net);
      assert.ok(netMount);
      assert.deepEqual(netMount.optional.filter((o) => o.startsWith('shared:')), [], 'the netns bind propagates');
      await s2.close(); // a pod still has mounts: kept
      assert.ok(readMountInfo().some((m) => m.mountPoint === pods));
      await s2.remove(id);
      await s2.close();
      assert.equal(readMountInfo().some((m) => m.mountPoint === pods), false);
    } finally {
      for (const s of shared.services) for (const r of s.store.list()) await s.remove(r.id).catch(() => undefined);
      execFileSync('umount', ['-l', shared.config.state]);
      assert.deepEqual(await shared.cleanup(), []);
    }
  });
});
