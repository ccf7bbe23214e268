// Runtime handlers through a real berthd: Status lists every configured
// handler (a broken one too, without failing RuntimeReady), a pod's
// runtime_handler picks the binary and --root its containers run under, and
// unusable or unknown handlers fail RunPodSandbox cleanly. A handler whose
// binary runs but cannot create containers here (crun on a hybrid cgroup
// host) is found by berthd's start-up probe and reported in Status.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

const GRPC_NOT_FOUND = 5;
const GRPC_FAILED_PRECONDITION = 9;

/** Container ids `runc --root root list` knows (an absent root lists nothing). */
function runcList(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  const out = execFileSync('runc', ['--root', root, 'list', '--format', 'json'], { encoding: 'utf8' }).trim();
  const entries = (out && out !== 'null' ? JSON.parse(out) : []) as { id: string }[];
  return entries.map((e) => e.id);
}

/**
 * Whether crun can start a container on this host: `crun run` of a bundle
 * holding only busybox `true`. Debian 12's crun 1.8.1 refuses a hybrid
 * cgroup v1/v2 layout ("cgroups in hybrid mode not supported ...").
 */
function probeCrun(): { ok: true } | { ok: false; reason: string; output?: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-crun-probe-'));
  const id = `berth-crun-probe-${process.pid}`;
  const root = path.join(dir, 'state');
  try {
    const bundle = path.join(dir, 'bundle');
    fs.mkdirSync(path.join(bundle, 'rootfs', 'bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(bundle, 'rootfs', 'bin', 'busybox'));
    fs.chmodSync(path.join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
    fs.symlinkSync('busybox', path.join(bundle, 'rootfs', 'bin', 'true'));
    const spec = spawnSync('crun', ['spec'], { cwd: bundle, encoding: 'utf8', timeout: 10000 });
    if (spec.error) return { ok: false, reason: `crun is not usable: ${spec.error.message}` };
    if (spec.status !== 0) return { ok: false, reason: `crun spec failed: ${spec.stderr.trim()}` };
    const configPath = path.join(bundle, 'config.json');
    const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as { process: { terminal: boolean; args: string[] } };
    config.process.terminal = false;
    config.process.args = ['/bin/true'];
    fs.writeFileSync(configPath, JSON.stringify(config));
    const run = spawnSync('crun', ['--root', root, 'run', '--bundle', bundle, id], { encoding: 'utf8', timeout: 20000 });
    if (run.status === 0) return { ok: true };
    const output = (run.stderr || run.stdout).trim();
    const why = output || run.error?.message || `exit status ${String(run.status)}`;
    return { ok: false, reason: `crun cannot start a container here: ${why}`, output };
  } finally {
    spawnSync('crun', ['--root', root, 'delete', '--force', id], { timeout: 10000 });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('runtime handlers through a real berthd', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  let tmp: string;
  let runc2Root: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-handlers-'));
    runc2Root = path.join(tmp, 'runc2-root');
    fx = await startContainerFixture({
      configToml: [
        '[runtime.handlers.runc2]',
        'path = "runc"',
        `root = ${JSON.stringify(runc2Root)}`,
        '[runtime.handlers.broken]',
        'path = "/nonexistent/runtime"',
        // Present but not a runtime: `false --version` fails.
        '[runtime.handlers.notaruntime]',
        'path = "/bin/false"',
        '',
      ].join('\n'),
    });
  });
  after(async () => {
    try {
      await fx?.cleanup();
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  const rt = () => fx.berthd.cri.runtime;
  const defaultRoot = () => path.join(fx.berthd.state, 'runtime', 'runc');

  /** Runs a pod with `handler` and a sleeping container in it; returns both ids. */
  async function runWithHandler(handler: string): Promise<{ podId: string; containerId: string }> {
    const cfg = podConfig(fx);
    const { podSandboxId: podId } = await rt().RunPodSandbox({ config: cfg, runtimeHandler: handler });
    const { containerId } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(fx.image, `on-${handler}`),
      sandboxConfig: cfg,
    });
    await rt().StartContainer({ containerId });
    await waitFor('container running', async () => {
      const s = await rt().ContainerStatus({ containerId, verbose: false });
      return s.status?.state === 'CONTAINER_RUNNING' ? true : undefined;
    });
    return { podId, containerId };
  }

  async function removePod(podId: string): Promise<void> {
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
  }

  it('lists every configured handler in Status, the broken one with its problem, and stays RuntimeReady', async () => {
    const res = await rt().Status({ verbose: true });
    const names = res.runtimeHandlers.map((h) => h.name).sort();
    assert.deepEqual(names, ['', 'broken', 'crun', 'notaruntime', 'runc', 'runc2']);
    for (const h of res.runtimeHandlers) assert.ok(h.features, `handler "${h.name}" has features`);
    const ready = res.status?.conditions.find((c) => c.type === 'RuntimeReady');
    assert.equal(ready?.status, true, `RuntimeReady: ${JSON.stringify(ready)}`);

    const info = JSON.parse(res.info.runtimeHandlers) as { name: string; ok: boolean; problem: string; root: string }[];
    const broken = info.find((h) => h.name === 'broken');
    assert.equal(broken?.ok, false);
    assert.match(broken?.problem ?? '', /\/nonexistent\/runtime/);
    assert.match(broken?.problem ?? '', /not found/);
    const notARuntime = info.find((h) => h.name === 'notaruntime');
    assert.equal(notARuntime?.ok, false);
    assert.match(notARuntime?.problem ?? '', /\/bin\/false --version" failed/);
    const runc2 = info.find((h) => h.name === 'runc2');
    assert.equal(runc2?.ok, true);
    assert.equal(runc2?.root, runc2Root);
  });

  it('reports each handler\'s own features: the default entry mirrors the default handler', async () => {
    const res = await rt().Status({ verbose: false });
    const byName = new Map(res.runtimeHandlers.map((h) => [h.name, h.features]));
    // Whatever `runc features` says about "rro", Status must say the same for
    // runc and for the default entry; a missing binary supports nothing.
    const runcRro = /"rro"/.test(spawnSync('runc', ['features'], { encoding: 'utf8' }).stdout ?? '');
    assert.equal(byName.get('runc')?.recursiveReadOnlyMounts, runcRro);
    assert.deepEqual(byName.get(''), byName.get('runc'));
    assert.equal(byName.get('broken')?.recursiveReadOnlyMounts, false);
    assert.equal(byName.get('broken')?.userNamespaces, false);
  });

  it('runs a pod with runtime_handler "runc2" under that handler\'s own --root', async () => {
    const { podId, containerId } = await runWithHandler('runc2');
    try {
      const pod = await rt().PodSandboxStatus({ podSandboxId: podId, verbose: false });
      assert.equal(pod.status?.runtimeHandler, 'runc2');
      assert.ok(runcList(runc2Root).includes(containerId), 'the container is in the runc2 root');
      assert.ok(!runcList(defaultRoot()).includes(containerId), 'the container is not in the default root');
    } finally {
      await removePod(podId);
    }
    assert.ok(!runcList(runc2Root).includes(containerId), 'removing the pod deletes the container from the runc2 root');
  });

  it('fails a pod with a missing or broken handler with FAILED_PRECONDITION naming the binary, leaving nothing', async () => {
    const podsBefore = (await rt().ListPodSandbox({})).items.map((p) => p.id).sort();
    const stateBefore = fs.readdirSync(path.join(fx.berthd.state, 'pods')).sort();
    await assert.rejects(rt().RunPodSandbox({ config: podConfig(fx), runtimeHandler: 'broken' }), (err: unknown) => {
      assert.equal((err as grpc.ServiceError).code, GRPC_FAILED_PRECONDITION);
      assert.match((err as Error).message, /\/nonexistent\/runtime/);
      return true;
    });
    await assert.rejects(rt().RunPodSandbox({ config: podConfig(fx), runtimeHandler: 'notaruntime' }), (err: unknown) => {
      assert.equal((err as grpc.ServiceError).code, GRPC_FAILED_PRECONDITION);
      assert.match((err as Error).message, /\/bin\/false/);
      return true;
    });
    assert.deepEqual((await rt().ListPodSandbox({})).items.map((p) => p.id).sort(), podsBefore);
    assert.deepEqual(fs.readdirSync(path.join(fx.berthd.state, 'pods')).sort(), stateBefore);
  });

  it('fails a pod with an unknown handler with NOT_FOUND naming the configured handlers', async () => {
    const podsBefore = (await rt().ListPodSandbox({})).items.length;
    await assert.rejects(rt().RunPodSandbox({ config: podConfig(fx), runtimeHandler: 'nosuch' }), (err: unknown) => {
      assert.equal((err as grpc.ServiceError).code, GRPC_NOT_FOUND);
      const msg = (err as Error).message;
      assert.match(msg, /"nosuch"/);
      for (const name of ['runc', 'crun', 'runc2', 'broken', 'notaruntime']) assert.match(msg, new RegExp(`\\b${name}\\b`));
      return true;
    });
    assert.equal((await rt().ListPodSandbox({})).items.length, podsBefore);
  });

  describe('crun', () => {
    let probe: ReturnType<typeof probeCrun>;
    before(() => {
      probe = probeCrun();
      if (!probe.ok) console.log(`      ${probe.reason}`);
    });

    it('runs a container with runtime_handler "crun" where crun can start containers on this host', async function () {
      if (!probe.ok) {
        if (this.test) this.test.title += ` (skipped: ${probe.reason})`;
        this.skip();
      }
      const crunRoot = path.join(fx.berthd.state, 'runtime', 'crun');
      const { podId, containerId } = await runWithHandler('crun');
      try {
        const list = execFileSync('crun', ['--root', crunRoot, 'list', '-q'], { encoding: 'utf8' }).split('\n');
        assert.ok(list.includes(containerId), 'the container is in the crun root');
        assert.ok(!runcList(defaultRoot()).includes(containerId), 'the container is not in the runc root');
      } finally {
        await removePod(podId);
      }
    });

    it('where crun cannot start containers, Status reports crun not ok with crun\'s own reason at start', async function () {
      if (probe.ok) {
        if (this.test) this.test.title += ' (skipped: crun works on this host)';
        this.skip();
      }
      const res = await rt().Status({ verbose: true });
      const ready = res.status?.conditions.find((c) => c.type === 'RuntimeReady');
      assert.equal(ready?.status, true, 'an unusable non-default handler does not make the runtime unready');
      const info = JSON.parse(res.info.runtimeHandlers) as { name: string; ok: boolean; problem: string }[];
      const crun = info.find((h) => h.name === 'crun');
      assert.equal(crun?.ok, false, JSON.stringify(crun));
      assert.match(crun?.problem ?? '', /^runtime handler "crun": cannot create a container on this host: /);
      if (!probe.ok && probe.output) assert.ok(crun?.problem.includes(probe.output), `"${crun?.problem}" gives crun's reason`);
      // The runc handlers pass the same probe.
      for (const name of ['runc', 'runc2']) assert.equal(info.find((h) => h.name === name)?.ok, true, name);
    });

    it('where crun cannot start containers, fails RunPodSandbox with crun at once, naming the reason, leaving nothing', async function () {
      if (probe.ok) {
        if (this.test) this.test.title += ' (skipped: crun works on this host)';
        this.skip();
      }
      const podsBefore = (await rt().ListPodSandbox({})).items.map((p) => p.id).sort();
      const stateBefore = fs.readdirSync(path.join(fx.berthd.state, 'pods')).sort();
      await assert.rejects(rt().RunPodSandbox({ config: podConfig(fx), runtimeHandler: 'crun' }), (err: unknown) => {
        assert.equal((err as grpc.ServiceError).code, GRPC_FAILED_PRECONDITION, (err as Error).message);
        assert.match((err as Error).message, /runtime handler "crun": cannot create a container on this host/);
        if (!probe.ok && probe.output) assert.ok((err as Error).message.includes(probe.output), `"${(err as Error).message}" gives crun's reason`);
        return true;
      });
      assert.deepEqual((await rt().ListPodSandbox({})).items.map((p) => p.id).sort(), podsBefore);
      assert.deepEqual(fs.readdirSync(path.join(fx.berthd.state, 'pods')).sort(), stateBefore);
      const crunRoot = path.join(fx.berthd.state, 'runtime', 'crun');
      const left = fs.existsSync(crunRoot) ? execFileSync('crun', ['--root', crunRoot, 'list', '-q'], { encoding: 'utf8' }).trim() : '';
      assert.equal(left, '', 'no container is left in the crun root');
    });

    it('leaves no probe directory in the state directory', () => {
      assert.ok(!fs.existsSync(path.join(fx.berthd.state, 'probe')), 'the start-up probes cleaned up after themselves');
    });
  });
});
