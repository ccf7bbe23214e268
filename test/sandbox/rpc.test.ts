// The sandbox RPCs against a real berthd over its socket (the daemon wires
// the SandboxService into ctx.sandboxes).
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { TestBerthd } from '../helpers/berthd';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { readMountInfoSync as readMountInfo } from '../../src/util/mountinfo';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import { buildPinns } from './fixture';

function grpcCode(err: unknown): number | undefined {
  return (err as grpc.ServiceError).code;
}

const ALREADY_EXISTS = 6;
const NOT_FOUND = 5;

describe('sandbox RPCs (berthd)', function () {
  this.timeout(60_000);
  let d: TestBerthd;
  const cgroupBase = `/berth-rpc-test-${randomBytes(4).toString('hex')}`;

  // Host network keeps these tests independent of the CNI configuration; the
  // pod still gets pinned IPC and PID namespaces, shm, files and a cgroup.
  function config(name: string, labels: Record<string, string> = {}): PodSandboxConfig {
    return {
      metadata: { name, namespace: 'rpc', uid: `uid-${name}`, attempt: 0 },
      labels: { suite: 'rpc', ...labels },
      annotations: { 'example.com/a': '1' },
      dnsConfig: { servers: ['10.0.0.10'], searches: ['rpc.svc'], options: [] },
      linux: {
        cgroupParent: `${cgroupBase}/pod-${name}`,
        securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD', ipc: 'POD' } },
      },
    };
  }

  before(async () => {
    buildPinns();
    d = await TestBerthd.start();
  });

  after(async () => {
    if (d) {
      try {
        const all = await d.cri.runtime.ListPodSandbox({});
        for (const p of all.items) await d.cri.runtime.RemovePodSandbox({ podSandboxId: p.id });
      } catch {
        // the assertions below say what is left
      }
      await d.stop();
      const left = readMountInfo().filter((m) => m.mountPoint.startsWith(d.dir + '/'));
      for (const h of detectCgroupLayout().hierarchies) {
        try {
          fs.rmdirSync(path.join(h.mountpoint, cgroupBase));
        } catch {
          // never created, or already gone
        }
      }
      await d.cleanup();
      assert.deepEqual(left.map((m) => m.mountPoint), [], 'mounts left under the berthd dir');
    }
  });

  it('runs, lists, reports, stops and removes a pod', async () => {
    const rt = d.cri.runtime;
    const { podSandboxId: id } = await rt.RunPodSandbox({ config: config('web', { tier: 'web' }), runtimeHandler: 'runc' });
    assert.match(id, /^[0-9a-f]{64}$/);

    const st = await rt.PodSandboxStatus({ podSandboxId: id.slice(0, 8), verbose: true });
    const s = st.status!;
    assert.equal(s.id, id);
    assert.equal(s.state, 'SANDBOX_READY');
    assert.match(s.createdAt, /^\d{19}$/);
    assert.deepEqual(s.metadata, { name: 'web', namespace: 'rpc', uid: 'uid-web', attempt: 0 });
    assert.equal(s.labels.tier, 'web');
    assert.equal(s.annotations['example.com/a'], '1');
    assert.equal(s.runtimeHandler, 'runc');
    assert.equal(s.linux!.namespaces!.options!.network, 'NODE');
    assert.equal(s.linux!.namespaces!.options!.pid, 'POD');
    assert.equal(s.network!.ip, '');
    const info = JSON.parse(st.info.info) as { pid: number; namespaces: Record<string, string>; resolvConf: string };
    assert.ok(info.pid > 1);
    assert.ok(info.namespaces.ipc && info.namespaces.pid && !info.namespaces.net);
    assert.equal(fs.readFileSync(info.resolvConf, 'utf8'), 'search rpc.svc\nnameserver 10.0.0.10\n');

    const dup = await rt.RunPodSandbox({ config: config('web'), runtimeHandler: '' }).catch((e: unknown) => e);
    assert.equal(grpcCode(dup), ALREADY_EXISTS);
    assert.match(String((dup as Error).message), new RegExp(id));

    const bad = await rt.RunPodSandbox({ config: config('nohandler'), runtimeHandler: 'nope' }).catch((e: unknown) => e);
    assert.equal(grpcCode(bad), NOT_FOUND);
    assert.match(String((bad as Error).message), /runtime handler "nope"/);

    const { podSandboxId: db } = await rt.RunPodSandbox({ config: config('db', { tier: 'db' }), runtimeHandler: '' });
    const byLabel = await rt.ListPodSandbox({ filter: { labelSelector: { tier: 'db' } } });
    assert.deepEqual(byLabel.items.map((p) => p.id), [db]);
    const byPrefix = await rt.ListPodSandbox({ filter: { id: id.slice(0, 6) } });
    assert.deepEqual(byPrefix.items.map((p) => p.id), [id]);

    await rt.StopPodSandbox({ podSandboxId: db });
    await rt.StopPodSandbox({ podSandboxId: db });
    const notReady = await rt.ListPodSandbox({ filter: { state: { state: 'SANDBOX_NOTREADY' } } });
    assert.deepEqual(notReady.items.map((p) => p.id), [db]);

    // Records survive a restart.
    await d.stop();
    await d.launch();
    const after = await d.cri.runtime.ListPodSandbox({});
    assert.deepEqual(after.items.map((p) => [p.id, p.state]).sort(), [[id, 'SANDBOX_READY'], [db, 'SANDBOX_NOTREADY']].sort());

    for (const p of [id, db]) {
      await d.cri.runtime.RemovePodSandbox({ podSandboxId: p });
      await d.cri.runtime.RemovePodSandbox({ podSandboxId: p });
    }
    await d.cri.runtime.StopPodSandbox({ podSandboxId: id });
    const gone = await d.cri.runtime.PodSandboxStatus({ podSandboxId: id }).catch((e: unknown) => e);
    assert.equal(grpcCode(gone), NOT_FOUND);
    assert.deepEqual((await d.cri.runtime.ListPodSandbox({})).items, []);
    assert.deepEqual(readMountInfo().filter((m) => m.mountPoint.startsWith(d.dir + '/')).map((m) => m.mountPoint), []);
  });
});
