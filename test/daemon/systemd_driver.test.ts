// runtime.cgroup_driver = "systemd" against a real systemd: Debian's, booted
// as PID 1 of an nspawn container, with berthd running under it as a
// service and runc under berthd. A pod with the kubelet's slice as its
// cgroup parent becomes that slice (berth-pause a scope in it), its
// container runc's scope, with the limits as unit properties and in the
// cgroup files; removing the pod leaves no unit and no directory behind.
import * as assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CriClient } from '../../src/client/cri_client';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { expandSlice } from '../../src/cgroups/systemd/units';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import { BERTHD_MAIN } from '../helpers/berthd';
import { SystemdContainer } from '../helpers/nspawn';
import { makeLayer, Pusher, TestRegistry } from '../helpers/registry';

// Not under /tmp: the container's /tmp is nodev, and runc makes device nodes in its bundles.
const DIR = '/var/lib/berth-systemd';
const MiB = 1024 * 1024;

describe('systemd cgroup driver under a real systemd (PID 1 of an nspawn container)', function () {
  this.timeout(60_000);
  let c: SystemdContainer | undefined;
  let registry: TestRegistry | undefined;
  let cri: CriClient | undefined;
  let image = '';
  let unit = '';

  /** `systemctl show -p` of a unit, as a map. */
  const show = (name: string, props: string[]): Record<string, string> => {
    const r = c!.run('systemctl', ['show', name, ...props.map((p) => `-p${p}`)]);
    assert.equal(r.status, 0, r.stderr);
    return Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  };
  /** A cgroup file of controller `ctl` (v1) or the unified tree (v2), as berthd's host sees it. */
  const v1 = detectCgroupLayout().version === 1;
  const cgroupFile = (ctl: string, cgroupPath: string, file: string): string =>
    fs.readFileSync(c!.hostPath(path.join('/sys/fs/cgroup', v1 ? ctl : '', cgroupPath, file)), 'utf8').trim();
  const cgroupExists = (ctl: string, cgroupPath: string): boolean => fs.existsSync(c!.hostPath(path.join('/sys/fs/cgroup', v1 ? ctl : '', cgroupPath)));

  const startBerthd = async (): Promise<void> => {
    unit = `berthd-${randomBytes(3).toString('hex')}`;
    // A service of the container's systemd, as deploy/berthd.service runs it (shims outlive a restart).
    const log = `${DIR}/${unit}.log`;
    const r = c!.run('systemd-run', [`--unit=${unit}`, '-p', 'KillMode=process', '-p', `StandardOutput=append:${log}`, '-p', `StandardError=append:${log}`, process.execPath, BERTHD_MAIN, '--config', `${DIR}/config.toml`]);
    assert.equal(r.status, 0, r.stderr);
    const socket = c!.hostPath(`${DIR}/berth.sock`);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (fs.existsSync(socket)) {
        const client = new CriClient(socket);
        try {
          await client.runtime.Version({});
          cri = client;
          return;
        } catch {
          client.close();
        }
      }
      const state = show(`${unit}.service`, ['ActiveState']).ActiveState;
      if (state === 'failed' || Date.now() > deadline) {
        throw new Error(`berthd did not start (${state}):\n${fs.readFileSync(c!.hostPath(log), 'utf8').slice(-4000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const stopBerthd = async (): Promise<void> => {
    cri?.close();
    cri = undefined;
    c!.run('systemctl', ['kill', '--kill-who=main', '-s', 'SIGTERM', `${unit}.service`]);
    const deadline = Date.now() + 20_000;
    while (fs.existsSync(c!.hostPath(`${DIR}/berth.sock`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  };

  before(async function () {
    if (!SystemdContainer.available()) this.skip(); // systemd-container is in deploy/install-deps.sh and installed by CI
    registry = await TestRegistry.start();
    const layer = makeLayer({ 'bin/busybox': { copyOf: '/bin/busybox' }, 'bin/sh': { symlink: 'busybox' }, 'bin/sleep': { symlink: 'busybox' } });
    await new Pusher(registry.host).pushImage('test/sd', '1', { layers: [layer], config: { Env: ['PATH=/bin'], Cmd: ['sleep', '3600'] } });
    image = `${registry.host}/test/sd:1`;
    c = await SystemdContainer.start({ hostNetwork: true, writableControllers: true });
    fs.mkdirSync(c.hostPath(DIR), { recursive: true });
    fs.writeFileSync(
      c.hostPath(`${DIR}/config.toml`),
      [
        `socket = "${DIR}/berth.sock"`,
        `root = "${DIR}/root"`,
        `state = "${DIR}/state"`,
        '[log]\nlevel = "debug"',
        '[metrics]\nenabled = false',
        '[runtime]\ncgroup_driver = "systemd"',
        '[cni]\nconf_dir = "/nonexistent-berth-test-cni"',
      ].join('\n') + '\n',
    );
    await startBerthd();
    await cri!.image.PullImage({ image: { image } });
  });

  after(async () => {
    if (cri) await stopBerthd();
    await c?.stop();
    await registry?.stop();
  });

  it('reports the systemd driver to the kubelet', async () => {
    const cfg = await cri!.runtime.RuntimeConfig({});
    assert.equal(cfg.linux?.cgroupDriver, 'SYSTEMD');
  });

  it("runs a pod as the kubelet's slice, berth-pause and the container as scopes in it, with the limits; removal leaves nothing", async () => {
    const uid = randomUUID();
    const slice = `kubepods-burstable-pod${uid.replace(/-/g, '_')}.slice`;
    const slicePath = expandSlice(slice);
    const config: PodSandboxConfig = {
      metadata: { name: 'sd', namespace: 'test', uid, attempt: 0 },
      linux: { cgroupParent: slice, securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } },
    };
    const rt = cri!.runtime;
    const { podSandboxId } = await rt.RunPodSandbox({ config });
    const status = await rt.PodSandboxStatus({ podSandboxId });
    assert.equal(status.status?.linux?.namespaces?.options?.pid, 'POD');

    // The slice, made over D-Bus, and berth-pause's scope in it.
    const s = show(slice, ['ActiveState', 'ControlGroup']);
    assert.deepEqual(s, { ActiveState: 'active', ControlGroup: slicePath });
    const pause = show(`berth-pause-${podSandboxId}.scope`, ['ActiveState', 'Slice', 'ControlGroup']);
    assert.deepEqual(pause, { ActiveState: 'active', Slice: slice, ControlGroup: `${slicePath}/berth-pause-${podSandboxId}.scope` });

    // Pod limits: unit properties, and the files agree.
    await rt.UpdatePodSandboxResources({
      podSandboxId,
      resources: { cpuShares: '512', cpuQuota: '50000', cpuPeriod: '100000', memoryLimitInBytes: String(256 * MiB) },
    });
    const sliceLimits = show(slice, v1 ? ['MemoryLimit', 'CPUShares', 'CPUQuotaPerSecUSec'] : ['MemoryMax', 'CPUWeight', 'CPUQuotaPerSecUSec']);
    assert.equal(v1 ? sliceLimits.MemoryLimit : sliceLimits.MemoryMax, String(256 * MiB));
    assert.equal(sliceLimits.CPUQuotaPerSecUSec, '500ms');
    if (v1) {
      assert.equal(sliceLimits.CPUShares, '512');
      assert.equal(cgroupFile('memory', slicePath, 'memory.limit_in_bytes'), String(256 * MiB));
      assert.equal(cgroupFile('cpu', slicePath, 'cpu.cfs_quota_us'), '50000');
      assert.equal(cgroupFile('cpu', slicePath, 'cpu.shares'), '512');
    } else {
      assert.equal(cgroupFile('', slicePath, 'memory.max'), String(256 * MiB));
      assert.equal(cgroupFile('', slicePath, 'cpu.max'), '50000 100000');
    }

    // The container: runc --systemd-cgroup makes berth-<id>.scope in the slice, with its limits.
    const { containerId } = await rt.CreateContainer({
      podSandboxId,
      sandboxConfig: config,
      config: {
        metadata: { name: 'app' },
        image: { image },
        linux: { resources: { cpuShares: '256', cpuQuota: '20000', cpuPeriod: '100000', memoryLimitInBytes: String(128 * MiB) } },
      },
    });
    await rt.StartContainer({ containerId });
    const scope = `berth-${containerId}.scope`;
    const scopePath = `${slicePath}/${scope}`;
    const sc = show(scope, ['ActiveState', 'Slice', 'ControlGroup', v1 ? 'MemoryLimit' : 'MemoryMax', 'CPUQuotaPerSecUSec']);
    assert.equal(sc.ActiveState, 'active');
    assert.equal(sc.Slice, slice);
    assert.equal(sc.ControlGroup, scopePath);
    assert.equal(v1 ? sc.MemoryLimit : sc.MemoryMax, String(128 * MiB));
    assert.equal(sc.CPUQuotaPerSecUSec, '200ms');
    assert.equal(cgroupFile('memory', scopePath, v1 ? 'memory.limit_in_bytes' : 'memory.max'), String(128 * MiB));
    if (v1) assert.equal(cgroupFile('cpu', scopePath, 'cpu.cfs_quota_us'), '20000');
    // Stats come from the scope's cgroup.
    const stats = await rt.ContainerStats({ containerId });
    assert.ok(Number(stats.stats?.memory?.workingSetBytes?.value ?? 0) > 0, 'the scope has memory usage');
    const podStats = await rt.PodSandboxStats({ podSandboxId });
    assert.ok(Number(podStats.stats?.linux?.memory?.workingSetBytes?.value ?? 0) > 0, 'the slice has memory usage');

    // UpdateContainerResources goes through runc update, which sets the scope's properties.
    await rt.UpdateContainerResources({ containerId, linux: { memoryLimitInBytes: String(64 * MiB), cpuQuota: '20000', cpuPeriod: '100000', cpuShares: '256' } });
    assert.equal(show(scope, [v1 ? 'MemoryLimit' : 'MemoryMax'])[v1 ? 'MemoryLimit' : 'MemoryMax'], String(64 * MiB));
    assert.equal(cgroupFile('memory', scopePath, v1 ? 'memory.limit_in_bytes' : 'memory.max'), String(64 * MiB));

    // A restarted berthd finds the pod and tears it down through systemd.
    await stopBerthd();
    await startBerthd();
    await cri!.runtime.StopPodSandbox({ podSandboxId });
    assert.equal(show(scope, ['ActiveState']).ActiveState, 'inactive');
    await cri!.runtime.RemovePodSandbox({ podSandboxId });
    // Stopped (systemd unloads a stopped transient unit soon after: not-found).
    for (const u of [slice, scope, `berth-pause-${podSandboxId}.scope`]) assert.equal(show(u, ['ActiveState']).ActiveState, 'inactive', u);
    for (const ctl of v1 ? ['memory', 'cpu', 'pids', 'systemd'] : ['']) assert.equal(cgroupExists(ctl, slicePath), false, `${ctl} ${slicePath} is gone`);
  });

  it('gives a pod without a cgroup parent its own slice in berth.slice', async () => {
    const uid = randomUUID();
    const rt = cri!.runtime;
    const { podSandboxId } = await rt.RunPodSandbox({
      config: { metadata: { name: 'sd2', namespace: 'test', uid, attempt: 0 }, linux: { securityContext: { namespaceOptions: { network: 'NODE' } } } },
    });
    const slice = `berth-pod${uid.replace(/-/g, '_')}.slice`;
    assert.deepEqual(show(slice, ['ActiveState', 'ControlGroup']), { ActiveState: 'active', ControlGroup: `/berth.slice/${slice}` });
    await rt.StopPodSandbox({ podSandboxId });
    await rt.RemovePodSandbox({ podSandboxId });
    assert.equal(show(slice, ['ActiveState']).ActiveState, 'inactive');
    assert.equal(cgroupExists('memory', `/berth.slice/${slice}`), false);
  });

  it("uses a slice the kubelet made, and leaves it to the kubelet at removal", async () => {
    const uid = randomUUID();
    const slice = `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`;
    // The kubelet starts its pod slices itself; a service kept in it keeps it up, as the kubelet's own would.
    const holder = `holder-${randomBytes(3).toString('hex')}`;
    const r = c!.run('systemd-run', [`--unit=${holder}`, `--slice=${slice}`, '-p', 'RemainAfterExit=yes', '/bin/true']);
    assert.equal(r.status, 0, r.stderr);
    const rt = cri!.runtime;
    const { podSandboxId } = await rt.RunPodSandbox({
      config: { metadata: { name: 'sd4', namespace: 'test', uid, attempt: 0 }, linux: { cgroupParent: slice, securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } } },
    });
    assert.equal(show(`berth-pause-${podSandboxId}.scope`, ['Slice']).Slice, slice);
    await rt.StopPodSandbox({ podSandboxId });
    await rt.RemovePodSandbox({ podSandboxId });
    assert.equal(show(`berth-pause-${podSandboxId}.scope`, ['ActiveState']).ActiveState, 'inactive');
    assert.equal(show(slice, ['ActiveState']).ActiveState, 'active', "the kubelet's slice stays");
    c!.run('systemctl', ['stop', `${holder}.service`, slice]);
  });

  it('refuses a cgroupfs path as cgroup parent, naming the driver', async () => {
    await assert.rejects(
      cri!.runtime.RunPodSandbox({
        config: { metadata: { name: 'sd3', namespace: 'test', uid: randomUUID(), attempt: 0 }, linux: { cgroupParent: '/kubepods/burstable/podx' } },
      }),
      /INVALID_ARGUMENT.*is not a systemd slice name.*berth uses the systemd cgroup driver/s,
    );
  });
});
