import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';
import { makeLayer, Pusher } from '../helpers/registry';

/** Processes whose command line mentions `needle` (shims, pause processes of this test). */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // zombies are not alive
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

/** Directories with one of these names two levels below any cgroup mount (e.g. <mount>/berth/pod<uid>). */
function cgroupDirsNamed(names: string[]): string[] {
  const found: string[] = [];
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(' ')[4]);
  for (const m of mounts) {
    for (const n of names) {
      const p = path.join(m, 'berth', n);
      if (fs.existsSync(p)) found.push(p);
    }
  }
  return found;
}

function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && m.startsWith(dir));
}

describe('containers: berthd restarts and shim loss', function () {
  this.timeout(180000);
  let fx: ContainerFixture;
  before(async () => {
    fx = await startContainerFixture();
  });
  after(async () => {
    await fx?.cleanup();
  });
  const rt = () => fx.berthd.cri.runtime;

  it('keeps containers running across kill -9 of berthd, and reports exits that happened while it was down', async () => {
    const pods: string[] = [];
    const uids: string[] = [];
    const long: string[] = [];
    const short: string[] = [];
    for (let i = 0; i < 3; i++) {
      const cfg = podConfig(fx, { linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } } });
      const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      pods.push(podId);
      uids.push(cfg.metadata?.uid as string);
      for (const [name, cmd, list] of [
        ['long', ['sleep', '3600'], long],
        ['short', ['sh', '-c', 'sleep 2; exit 5'], short],
      ] as const) {
        const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, name, { command: [...cmd] }), sandboxConfig: cfg });
        await rt().StartContainer({ containerId });
        list.push(containerId);
      }
    }
    const created = await rt().ContainerStatus({ containerId: long[0], verbose: false });
    assert.equal(await fx.berthd.stop('SIGKILL'), null);
    await new Promise((r) => setTimeout(r, 3000)); // the short ones exit while berthd is down
    await fx.berthd.launch();

    const listed = await rt().ListPodSandbox({});
    for (const p of pods) assert.equal(listed.items.find((x) => x.id === p)?.state, 'SANDBOX_READY');
    for (const id of long) {
      const s = await rt().ContainerStatus({ containerId: id, verbose: false });
      assert.equal(s.status?.state, 'CONTAINER_RUNNING');
      if (id === long[0]) assert.equal(s.status?.startedAt, created.status?.startedAt, 'start time survives the restart');
      const r = await rt().ExecSync({ containerId: id, cmd: ['echo', 'alive'], timeout: '10' });
      assert.equal(r.stdout.toString(), 'alive\n');
    }
    for (const id of short) {
      const s = await waitFor('exit recorded', async () => {
        const st = await rt().ContainerStatus({ containerId: id, verbose: false });
        return st.status?.state === 'CONTAINER_EXITED' ? st.status : undefined;
      });
      assert.equal(s.exitCode, 5);
      assert.equal(s.reason, 'Error');
    }
    // Stopping and removing everything after the restart leaves nothing behind.
    for (const p of pods) {
      await rt().StopPodSandbox({ podSandboxId: p });
      await rt().RemovePodSandbox({ podSandboxId: p });
    }
    assert.deepEqual((await rt().ListContainers({})).containers, []);
    await waitFor('shims gone', async () => (processesMentioning(fx.berthd.state).length === 0 ? true : undefined));
    assert.deepEqual(mountsUnder(fx.berthd.dir), []);
    assert.deepEqual(fs.readdirSync(path.join(fx.berthd.state, 'containers')), []);
    assert.deepEqual(fs.readdirSync(path.join(fx.berthd.state, 'shims')), []);
    // No pod cgroup is left in any hierarchy, the hybrid cgroup2 mount (where runc mirrors them) included.
    const podCgroups = cgroupDirsNamed(uids.map((u) => `pod${u}`));
    assert.deepEqual(podCgroups, []);
  });

  it('reports a container whose shim was killed as exited, and kills the orphan', async () => {
    const cfg = podConfig(fx);
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'orphan'), sandboxConfig: cfg });
    await rt().StartContainer({ containerId });
    const info = JSON.parse((await rt().ContainerStatus({ containerId, verbose: true })).info.info) as { pid: number };
    const shimPid = processesMentioning(containerId).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith(path.resolve('build/berth-shim')) || fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('berth-shim'));
    assert.ok(shimPid, 'shim found');
    process.kill(shimPid, 'SIGKILL');
    const s = await waitFor('exit recorded', async () => {
      const st = await rt().ContainerStatus({ containerId, verbose: false });
      return st.status?.state === 'CONTAINER_EXITED' ? st.status : undefined;
    });
    assert.equal(s.exitCode, 255);
    assert.equal(s.reason, 'Unknown');
    await waitFor('orphan killed', async () => {
      try {
        const st = fs.readFileSync(`/proc/${info.pid}/stat`, 'utf8');
        return /\) Z /.test(st) ? true : undefined;
      } catch {
        return true;
      }
    });
    await rt().RemoveContainer({ containerId });
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
  });

  it('keeps a removed image usable by its container, and collects its layers once the container is gone', async () => {
    const cfg = podConfig(fx);
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    // An image whose only layer no other image has.
    const layer = makeLayer({ 'bin/busybox': { copyOf: '/bin/busybox' }, 'bin/sleep': { symlink: 'busybox' }, 'bin/echo': { symlink: 'busybox' }, 'unique': 'gc-test' });
    await new Pusher(fx.registry.host).pushImage('test/unique', '1', { layers: [layer], config: { Env: ['PATH=/bin'], Cmd: ['sleep', '600'] } });
    const ref = `${fx.registry.host}/test/unique:1`;
    await fx.berthd.cri.image.PullImage({ image: { image: ref } });
    const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(ref, 'user'), sandboxConfig: cfg });
    await rt().StartContainer({ containerId });
    const img = await fx.berthd.cri.image.ImageStatus({ image: { image: ref }, verbose: false });
    const id = img.image?.id as string;
    await fx.berthd.cri.image.RemoveImage({ image: { image: id } });
    assert.equal((await fx.berthd.cri.image.ImageStatus({ image: { image: id }, verbose: false })).image, null);
    const r = await rt().ExecSync({ containerId, cmd: ['echo', 'still'], timeout: '10' });
    assert.equal(r.stdout.toString(), 'still\n');
    const layersOf = () =>
      Object.keys((JSON.parse(fs.readFileSync(path.join(fx.berthd.root, 'snapshots', 'metadata.json'), 'utf8')) as { snapshots: Record<string, unknown> }).snapshots);
    assert.ok(layersOf().includes(layer.diffId), 'the layer stays while the container uses it');
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
    await waitFor('layer collected', async () => (layersOf().includes(layer.diffId) ? undefined : true));
    assert.ok(!layersOf().some((k) => k.includes(containerId)));
  });
});
