// The pod RPCs' request checks at the CRI edge (src/cri/validate_pod.ts):
// what a RunPodSandbox request must hold, the PodSpec it becomes, and the
// pod id Stop/Remove need. No kernel involved.
import { strict as assert } from 'node:assert';
import * as os from 'node:os';
import { BerthError } from '../../src/errors';
import { removePodSandbox, stopPodSandbox } from '../../src/cri/sandbox_stop_remove';
import { podSpecOf } from '../../src/cri/validate_pod';
import type { SandboxService } from '../../src/sandbox/service';
import { podConfig, podContext } from './fixture';

function refuses(fn: () => unknown, kind: string, re: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof BerthError && err.kind === kind && re.test(err.message));
}

describe('pod request checks (cri)', () => {
  const spec = (cfg: ReturnType<typeof podConfig> | null) => podSpecOf(cfg, 'runc', '/berth');

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

  it('refuses missing metadata, bad namespace modes, user namespaces, sysctls, hostname, cgroup parent, DNS words and log dir', () => {
    refuses(() => spec(null), 'INVALID_ARGUMENT', /config is required/);
    refuses(() => spec(podConfig({ metadata: { name: 'x', namespace: 'd', uid: '', attempt: 0 } })), 'INVALID_ARGUMENT', /uid/);
    refuses(() => spec(podConfig({ metadata: null })), 'INVALID_ARGUMENT', /metadata\.name/);
    const target = podConfig();
    target.linux!.securityContext!.namespaceOptions!.pid = 'TARGET';
    refuses(() => spec(target), 'INVALID_ARGUMENT', /namespace_options.pid = TARGET/);
    const ipc = podConfig();
    ipc.linux!.securityContext!.namespaceOptions!.ipc = 'CONTAINER';
    refuses(() => spec(ipc), 'INVALID_ARGUMENT', /namespace_options.ipc = CONTAINER/);
    const userns = podConfig();
    userns.linux!.securityContext!.namespaceOptions!.usernsOptions = { mode: 'POD', uids: [], gids: [] };
    refuses(() => spec(userns), 'UNIMPLEMENTED', /user namespaces/);
    const sysctl = podConfig();
    sysctl.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    sysctl.linux!.sysctls = { 'net.ipv4.ip_forward': '1' };
    refuses(() => spec(sysctl), 'INVALID_ARGUMENT', /host network/);
    refuses(() => spec(podConfig({ hostname: 'a b' })), 'INVALID_ARGUMENT', /hostname/);
    const ownName = podConfig({ hostname: 'my-own-name' });
    ownName.linux!.securityContext!.namespaceOptions!.network = 'NODE';
    refuses(() => spec(ownName), 'INVALID_ARGUMENT', /host network.*cannot have its own/);
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
