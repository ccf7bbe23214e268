// The pod RPCs' request checks at the CRI edge (src/cri/validate_pod.ts):
// what a RunPodSandbox request must hold, the PodSpec it becomes, and the
// pod id Stop/Remove need. No kernel involved.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { BerthError } from '../../src/errors';
import { removePodSandbox, stopPodSandbox } from '../../src/cri/sandbox_stop_remove';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { CgroupfsPodDriver } from '../../src/cgroups/pod_driver';
import { podSpecOf } from '../../src/cri/validate_pod';
import type { SandboxService } from '../../src/sandbox/service';
import { podConfig, podContext } from './fixture';

function refuses(fn: () => unknown, kind: string, re: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof BerthError && err.kind === kind && re.test(err.message));
}

describe('pod request checks (cri)', () => {
  const cgroupfs = new CgroupfsPodDriver(() => detectCgroupLayout(), '/berth');
  const spec = (cfg: ReturnType<typeof podConfig> | null) => podSpecOf(cfg, 'runc', (parent, uid) => cgroupfs.name(parent, uid));

  describe('user namespaces (as critest v1.32 and containerd 2 check them)', () => {
    const map = (containerId: number, hostId: number, length: number) => ({ containerId, hostId, length });
    const withUserns = (u: NonNullable<NonNullable<NonNullable<ReturnType<typeof podConfig>['linux']>['securityContext']>['namespaceOptions']>['usernsOptions']) => {
      const cfg = podConfig();
      cfg.linux!.securityContext!.namespaceOptions!.usernsOptions = u;
      return cfg;
    };
    it('mode POD with one uid and one gid mapping from container id 0 gives the pod its maps', () => {
      const s = spec(withUserns({ mode: 'POD', uids: [map(0, 1000, 100000)], gids: [map(0, 2000, 65536)] }));
      assert.deepEqual(s.userns, { uids: [map(0, 1000, 100000)], gids: [map(0, 2000, 65536)] });
    });
    it('mode NODE (or no userns_options) is the host user namespace', () => {
      assert.equal(spec(withUserns({ mode: 'NODE', uids: [], gids: [] })).userns, undefined);
      assert.equal(spec(withUserns(null)).userns, undefined);
      refuses(() => spec(withUserns({ mode: 'NODE', uids: [map(0, 1000, 10)], gids: [] })), 'INVALID_ARGUMENT', /mode NODE takes no uid or gid mappings/);
    });
    it('refuses more than one mapping, container id 0 unmapped, CONTAINER and TARGET, each naming the rule', () => {
      const two = [map(0, 1000, 100000), map(0, 2000, 100000)];
      refuses(() => spec(withUserns({ mode: 'POD', uids: two, gids: two })), 'INVALID_ARGUMENT', /uids: exactly one mapping is required, got 2/);
      refuses(() => spec(withUserns({ mode: 'POD', uids: [map(0, 1, 5)], gids: two })), 'INVALID_ARGUMENT', /gids: exactly one mapping is required/);
      refuses(() => spec(withUserns({ mode: 'POD', uids: [], gids: [] })), 'INVALID_ARGUMENT', /exactly one mapping is required, got 0/);
      const one = [map(1, 1000, 100000)];
      refuses(() => spec(withUserns({ mode: 'POD', uids: one, gids: one })), 'INVALID_ARGUMENT', /container id 0 must be mapped/);
      refuses(() => spec(withUserns({ mode: 'CONTAINER', uids: [], gids: [] })), 'INVALID_ARGUMENT', /userns_options.mode = CONTAINER is not valid/);
      refuses(() => spec(withUserns({ mode: 'TARGET', uids: [], gids: [] })), 'INVALID_ARGUMENT', /userns_options.mode = TARGET is not valid/);
      refuses(() => spec(withUserns({ mode: 'POD', uids: [map(0, 1000, 0)], gids: [map(0, 1000, 0)] })), 'INVALID_ARGUMENT', /length 0/);
      refuses(() => spec(withUserns({ mode: 'POD', uids: [map(0, 2 ** 32 - 10, 100)], gids: [map(0, 1, 1)] })), 'INVALID_ARGUMENT', /past the last host id/);
    });
    it('refuses the host IPC or PID namespace with a user namespace', () => {
      for (const ns of ['ipc', 'pid'] as const) {
        const cfg = withUserns({ mode: 'POD', uids: [map(0, 1000, 10)], gids: [map(0, 1000, 10)] });
        cfg.linux!.securityContext!.namespaceOptions![ns] = 'NODE';
        refuses(() => spec(cfg), 'INVALID_ARGUMENT', /cannot use the host IPC or PID namespace/);
      }
    });
  });

  it('turns a request into a PodSpec: modes, sysctls, hostname, cgroup path, resolv.conf', () => {
    const cfg = podConfig({ dnsConfig: { servers: ['10.0.0.10'], searches: ['a.svc'], options: [] } }, 'spec-a');
    cfg.linux!.sysctls = { 'net.core.somaxconn': '1024' };
    const s = spec(cfg);
    assert.deepEqual(s.metadata, { name: 'spec-a', namespace: 'default', uid: cfg.metadata!.uid, attempt: 0 });
    assert.deepEqual(s.namespaceModes, { network: 'POD', pid: 'CONTAINER', ipc: 'POD' });
    assert.deepEqual(s.sysctls, { 'net.core.somaxconn': '1024' });
    assert.equal(s.hostname, 'spec-a');
    assert.equal(s.cgroupPath, `/berth/pod${cfg.metadata!.uid}`);
    assert.equal(s.resolvConf, 'search a.svc\nnameserver 10.0.0.10\n');
    assert.equal(s.runtimeHandler, 'runc');
    assert.equal(s.config, cfg);
    // A crictl-style config without linux: every namespace per pod.
    assert.deepEqual(spec(podConfig({ linux: null })).namespaceModes, { network: 'POD', pid: 'POD', ipc: 'POD' });
    // On the host network the pod has the host's name: none asked, or the node's own.
    for (const hostname of ['', os.hostname()]) {
      const host = podConfig({ hostname });
      host.linux!.securityContext!.namespaceOptions!.network = 'NODE';
      assert.equal(spec(host).hostname, undefined);
    }
    const parent = podConfig();
    parent.linux!.cgroupParent = '/kubepods//podx/';
    assert.equal(spec(parent).cgroupPath, '/kubepods/podx');
  });

  it('refuses missing metadata, bad namespace modes, sysctls, hostname, cgroup parent, DNS words and log dir', () => {
    refuses(() => spec(null), 'INVALID_ARGUMENT', /config is required/);
    refuses(() => spec(podConfig({ metadata: { name: 'x', namespace: 'd', uid: '', attempt: 0 } })), 'INVALID_ARGUMENT', /uid/);
    refuses(() => spec(podConfig({ metadata: null })), 'INVALID_ARGUMENT', /metadata\.name/);
    const target = podConfig();
    target.linux!.securityContext!.namespaceOptions!.pid = 'TARGET';
    refuses(() => spec(target), 'INVALID_ARGUMENT', /namespace_options.pid = TARGET/);
    const ipc = podConfig();
    ipc.linux!.securityContext!.namespaceOptions!.ipc = 'CONTAINER';
    refuses(() => spec(ipc), 'INVALID_ARGUMENT', /namespace_options.ipc = CONTAINER/);
    const sysctl = podConfig();
    sysctl.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    sysctl.linux!.sysctls = { 'net.ipv4.ip_forward': '1' };
    refuses(() => spec(sysctl), 'INVALID_ARGUMENT', /host network/);
    refuses(() => spec(podConfig({ hostname: 'a b' })), 'INVALID_ARGUMENT', /hostname/);
    const ownName = podConfig({ hostname: 'my-own-name' });
    ownName.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    assert.equal(spec(ownName).hostname, undefined, 'a host-network pod keeps the node name');
    const slice = podConfig();
    slice.linux!.cgroupParent = 'kubepods-burstable.slice';
    refuses(() => spec(slice), 'INVALID_ARGUMENT', /cgroupfs/);
    refuses(() => spec(podConfig({ dnsConfig: { servers: ['1.1.1.1\nx'], searches: [], options: [] } })), 'INVALID_ARGUMENT', /dns_config/);
    refuses(() => spec(podConfig({ logDirectory: 'logs/pod' })), 'INVALID_ARGUMENT', /log_directory "logs\/pod" must be an absolute path/);
  });

  it('requires the pod id in StopPodSandbox and RemovePodSandbox', async () => {
    const calls: string[] = [];
    const ctx = podContext({
      stop: async (id: string) => void calls.push(`stop ${id}`),
      remove: async (id: string) => void calls.push(`remove ${id}`),
    } as unknown as SandboxService);
    await assert.rejects(stopPodSandbox(ctx, { podSandboxId: '' }), /StopPodSandbox: pod_sandbox_id is required/);
    await assert.rejects(removePodSandbox(ctx, { podSandboxId: '' }), /RemovePodSandbox: pod_sandbox_id is required/);
    await stopPodSandbox(ctx, { podSandboxId: 'abc' });
    await removePodSandbox(ctx, { podSandboxId: 'abc' });
    assert.deepEqual(calls, ['stop abc', 'remove abc']);
  });
});
