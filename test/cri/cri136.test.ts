// The CRI of Kubernetes 1.36 (cri-api v0.36) end to end through a real
// berthd, runc and busybox containers.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { containerConfig, podConfig, startContainer, startContainerFixture, waitFor, type ContainerFixture } from '../container/fixture';
import { busyboxApplets, grpcCode, RawCri, tarLayer } from './fixture136';
import { Pusher } from '../helpers/registry';


function criuWorks(): boolean {
  try {
    execFileSync('criu', ['check'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('cri-api v0.36 through a real berthd', function () {
  this.timeout(180000);
  let fx: ContainerFixture;
  let raw: RawCri;
  let podId: string;
  let podCfg: ReturnType<typeof podConfig>;
  const rt = () => fx.berthd.cri.runtime;

  // CDI spec directories, fixed at berthd's start (the files are read at each create).
  const cdiRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cdi-'));
  const cdiDirs = [path.join(cdiRoot, 'etc'), path.join(cdiRoot, 'run')];

  before(async () => {
    for (const d of cdiDirs) fs.mkdirSync(d);
    fx = await startContainerFixture({ configToml: `[cdi]\nspec_dirs = ${JSON.stringify(cdiDirs)}\n` });
    raw = new RawCri(fx.berthd.socket);
    podCfg = podConfig(fx);
    podId = (await rt().RunPodSandbox({ config: podCfg })).podSandboxId;
  });
  after(async () => {
    raw?.close();
    await fx?.cleanup();
    fs.rmSync(cdiRoot, { recursive: true, force: true });
  });

  const run = (name: string, extra: Parameters<typeof containerConfig>[2] = {}, image?: string): Promise<string> =>
    startContainer(fx, { id: podId, config: podCfg }, name, extra, image);

  describe('the proto', () => {
    it('declares 41 RPCs, and berthd serves each one', async () => {
      const calls = RawCri.calls();
      assert.equal(calls.length, 41);
      const unimplemented: string[] = [];
      for (const c of calls) {
        try {
          if (c.method === 'GetContainerEvents') await raw.stream(c.service, c.method, {}, 300);
          else if (c.streaming) await raw.stream(c.service, c.method, {});
          else await raw.unary(c.service, c.method, {});
        } catch (err) {
          if (grpcCode(err) === grpc.status.UNIMPLEMENTED) unimplemented.push(c.method);
        }
      }
      assert.deepEqual(unimplemented, []);
    });

    it('carries env values as bytes: UTF-8 values reach the process, others are refused naming the variable', async () => {
      const id = await run('envbytes', { envs: [{ key: 'GREETING', value: Buffer.from('grüße') }] });
      const r = await rt().ExecSync({ containerId: id, cmd: ['sh', '-c', 'echo -n "$GREETING"'], timeout: 10 });
      assert.equal(r.stdout.toString('utf8'), 'grüße');
      await assert.rejects(
        rt().CreateContainer({
          podSandboxId: podId,
          config: containerConfig(fx.image, 'envbad', { envs: [{ key: 'BINARY', value: Buffer.from([0xff, 0xfe, 0x00]) }] }),
          sandboxConfig: podCfg,
        }),
        (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && /BINARY/.test((err as Error).message),
      );
    });
  });

  describe('list streaming', () => {
    type Ids = { id: string }[];

    it('streams pods and containers complete, each once, where the unary list exceeds 16 MiB', async () => {
      const big = 'a'.repeat(1800 * 1024);
      const pods: string[] = [];
      const ctrs: string[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const cfg = podConfig(fx, { annotations: { big }, labels: { bulk: 'yes' } });
          const id = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
          pods.push(id);
          const { containerId } = await rt().CreateContainer({
            podSandboxId: id,
            config: containerConfig(fx.image, 'bulky', { labels: { bulk: 'yes' }, annotations: { big } }),
            sandboxConfig: cfg,
          });
          ctrs.push(containerId);
        }
        await assert.rejects(rt().ListPodSandbox({}), (err) => grpcCode(err) === grpc.status.RESOURCE_EXHAUSTED);
        await assert.rejects(rt().ListContainers({}), (err) => grpcCode(err) === grpc.status.RESOURCE_EXHAUSTED);

        const podMsgs = await raw.stream<{ podSandboxes: (Ids[number] & { annotations: Record<string, string> })[] }>(
          'RuntimeService', 'StreamPodSandboxes', { filter: { labelSelector: { bulk: 'yes' } } });
        assert.ok(podMsgs.length > 1, 'several messages');
        assert.ok(podMsgs.every((m) => m.podSandboxes.length >= 1));
        const podIds = podMsgs.flatMap((m) => m.podSandboxes.map((p) => p.id));
        assert.deepEqual([...podIds].sort(), [...pods].sort());
        assert.ok(podMsgs.every((m) => m.podSandboxes.every((p) => p.annotations.big === big)));

        const all = (await raw.stream<{ podSandboxes: Ids }>('RuntimeService', 'StreamPodSandboxes', {})).flatMap((m) => m.podSandboxes.map((p) => p.id));
        assert.equal(new Set(all).size, all.length, 'no pod twice');
        assert.ok(all.includes(podId) && pods.every((p) => all.includes(p)));

        const ctrMsgs = await raw.stream<{ containers: Ids }>('RuntimeService', 'StreamContainers', { filter: { labelSelector: { bulk: 'yes' } } });
        assert.ok(ctrMsgs.length > 1);
        assert.deepEqual(ctrMsgs.flatMap((m) => m.containers.map((c) => c.id)).sort(), [...ctrs].sort());
      } finally {
        for (const id of pods) {
          await rt().StopPodSandbox({ podSandboxId: id });
          await rt().RemovePodSandbox({ podSandboxId: id });
        }
      }
    });

    it('gives the same items as the List twins, with the same filters', async () => {
      const a = await run('streamed-a', { labels: { pick: 'a' } });
      await run('streamed-b', { labels: { pick: 'b' } });
      const idsOf = <T extends { id: string }>(xs: T[]): string[] => xs.map((x) => x.id).sort();
      const listed = await rt().ListContainers({ filter: { labelSelector: { pick: 'a' } } });
      const streamed = await raw.stream<{ containers: Ids }>('RuntimeService', 'StreamContainers', { filter: { labelSelector: { pick: 'a' } } });
      assert.deepEqual(idsOf(streamed.flatMap((m) => m.containers)), idsOf(listed.containers));
      assert.deepEqual(idsOf(listed.containers), [a]);

      const byPrefix = await raw.stream<{ containers: Ids }>('RuntimeService', 'StreamContainers', { filter: { id: a.slice(0, 12) } });
      assert.deepEqual(idsOf(byPrefix.flatMap((m) => m.containers)), [a]);

      const pods = await rt().ListPodSandbox({ filter: { state: { state: 'SANDBOX_READY' } } });
      const podsStreamed = await raw.stream<{ podSandboxes: Ids }>('RuntimeService', 'StreamPodSandboxes', { filter: { state: { state: 'SANDBOX_READY' } } });
      assert.deepEqual(idsOf(podsStreamed.flatMap((m) => m.podSandboxes)), idsOf(pods.items));

      const stats = await rt().ListContainerStats({ filter: { podSandboxId: podId } });
      const statsStreamed = await raw.stream<{ containerStats: { attributes: { id: string } }[] }>(
        'RuntimeService', 'StreamContainerStats', { filter: { podSandboxId: podId } });
      const statIds = (xs: { attributes: { id: string } | null }[]) => xs.map((x) => x.attributes?.id ?? '').sort();
      assert.deepEqual(statIds(statsStreamed.flatMap((m) => m.containerStats)), statIds(stats.stats));
      assert.ok(stats.stats.length > 0);

      const podStats = await rt().ListPodSandboxStats({ filter: { id: podId } });
      const podStatsStreamed = await raw.stream<{ podSandboxStats: { attributes: { id: string } }[] }>(
        'RuntimeService', 'StreamPodSandboxStats', { filter: { id: podId } });
      assert.deepEqual(statIds(podStatsStreamed.flatMap((m) => m.podSandboxStats)), statIds(podStats.stats));
      assert.equal(podStats.stats.length, 1);

      const images = await fx.berthd.cri.image.ListImages({});
      const imagesStreamed = await raw.stream<{ images: Ids }>('ImageService', 'StreamImages', {});
      assert.deepEqual(idsOf(imagesStreamed.flatMap((m) => m.images)), idsOf(images.images));
      assert.equal(images.images.length, 2);
      const one = await raw.stream<{ images: Ids }>('ImageService', 'StreamImages', { filter: { image: { image: fx.image } } });
      assert.deepEqual(one.flatMap((m) => m.images).length, 1);
    });

    it('streams the pod metrics ListPodSandboxMetrics lists', async () => {
      const listed = await rt().ListPodSandboxMetrics({});
      const streamed = await raw.stream<{ podSandboxMetrics: { podSandboxId: string }[] }>('RuntimeService', 'StreamPodSandboxMetrics', {});
      const ids = (xs: { podSandboxId: string }[]) => xs.map((x) => x.podSandboxId).sort();
      assert.deepEqual(ids(streamed.flatMap((m) => m.podSandboxMetrics)), ids(listed.podMetrics));
      assert.ok(listed.podMetrics.some((m) => m.podSandboxId === podId));
    });
  });

  describe('UpdatePodSandboxResources', () => {
    const MiB = 1024 * 1024;
    const read = (controller: string, cgroupPath: string, file: string): string =>
      fs.readFileSync(path.join('/sys/fs/cgroup', controller, cgroupPath, file), 'utf8').trim();
    const limits = (memory: number, shares: number, quota: number) => ({
      memoryLimitInBytes: String(memory),
      cpuShares: String(shares),
      cpuQuota: String(quota),
      cpuPeriod: '100000',
    });

    it('sets resources plus overhead on the pod cgroup, resizes, and reports them in verbose PodSandboxStatus', async () => {
      await run('resized');
      const info = async () => JSON.parse((await rt().PodSandboxStatus({ podSandboxId: podId, verbose: true })).info.info) as {
        cgroupParent: string;
        resources: { resources: { memoryLimitInBytes: string }; overhead: { memoryLimitInBytes: string } } | null;
      };
      const cg = (await info()).cgroupParent;
      await rt().UpdatePodSandboxResources({ podSandboxId: podId, resources: limits(256 * MiB, 512, 50000), overhead: limits(16 * MiB, 10, 5000) });
      assert.equal(read('memory', cg, 'memory.limit_in_bytes'), String(272 * MiB));
      assert.equal(read('cpu', cg, 'cpu.shares'), '522');
      assert.equal(read('cpu', cg, 'cpu.cfs_quota_us'), '55000');
      assert.equal(read('cpu', cg, 'cpu.cfs_period_us'), '100000');
      // The resize: smaller memory, more CPU.
      await rt().UpdatePodSandboxResources({ podSandboxId: podId, resources: limits(128 * MiB, 1024, 200000), overhead: limits(16 * MiB, 10, 5000) });
      assert.equal(read('memory', cg, 'memory.limit_in_bytes'), String(144 * MiB));
      assert.equal(read('cpu', cg, 'cpu.shares'), '1034');
      assert.equal(read('cpu', cg, 'cpu.cfs_quota_us'), '205000');
      const after = await info();
      assert.equal(after.resources?.resources.memoryLimitInBytes, String(128 * MiB));
      assert.equal(after.resources?.overhead.memoryLimitInBytes, String(16 * MiB));
      // The container inside still runs under the pod's new limits.
      const s = await rt().ListContainers({ filter: { podSandboxId: podId, state: { state: 'CONTAINER_RUNNING' } } });
      assert.ok(s.containers.length > 0);
    });

    it('refuses bad values with INVALID_ARGUMENT, an unknown pod with NOT_FOUND, unified keys on v1 naming them', async () => {
      await assert.rejects(
        rt().UpdatePodSandboxResources({ podSandboxId: podId, resources: { memoryLimitInBytes: '-5' } }),
        (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && /memory_limit_in_bytes/.test((err as Error).message),
      );
      await assert.rejects(
        rt().UpdatePodSandboxResources({ podSandboxId: 'f'.repeat(64), resources: limits(64 * MiB, 2, 0) }),
        (err) => grpcCode(err) === grpc.status.NOT_FOUND,
      );
      await assert.rejects(
        rt().UpdatePodSandboxResources({ podSandboxId: podId, resources: { unified: { 'memory.high': '1000000' } } }),
        (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && /memory\.high/.test((err as Error).message),
      );
    });
  });

  describe('stop signals', () => {
    // Exits with `code` on `sig`: the exit code proves which signal StopContainer sent.
    // It says "trapped" once the trap is set: a signal sent before that reaches runc init
    // (which ignores USR1/USR2) or sh's default action, not the trap.
    const trapping = (sig: string, code: number) => ['sh', '-c', `trap "exit ${code}" ${sig}; echo trapped; while true; do sleep 0.1; done`];

    async function stopAndExit(id: string) {
      const name = (await rt().ContainerStatus({ containerId: id, verbose: false })).status?.metadata?.name ?? '';
      const log = path.join(podCfg.logDirectory ?? '', `${name}.log`);
      await waitFor('the trap', async () => (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('trapped') ? true : undefined));
      await rt().StopContainer({ containerId: id, timeout: '20' });
      return (await rt().ContainerStatus({ containerId: id, verbose: false })).status;
    }

    it('sends ContainerConfig.stop_signal, over the image\'s StopSignal, and reports it', async () => {
      const id = await run('sig-config', { command: trapping('USR2', 42), stopSignal: 'SIGUSR2' }, fx.image2);
      assert.equal((await rt().ContainerStatus({ containerId: id, verbose: false })).status?.stopSignal, 'SIGUSR2');
      const s = await stopAndExit(id);
      assert.equal(s?.exitCode, 42);
      assert.equal(s?.stopSignal, 'SIGUSR2');
    });

    it('sends the image\'s StopSignal when the config asks for none', async () => {
      const id = await run('sig-image', { command: trapping('USR1', 43) }, fx.image2);
      const s = await stopAndExit(id);
      assert.equal(s?.exitCode, 43);
      assert.equal(s?.stopSignal, 'SIGUSR1');
    });

    it('sends SIGTERM when neither says, and a real-time signal by its number', async () => {
      const id = await run('sig-default', { command: trapping('TERM', 44) });
      const s = await stopAndExit(id);
      assert.equal(s?.exitCode, 44);
      assert.equal(s?.stopSignal, 'SIGTERM');
      // SIGRTMIN+2 is 36 (glibc numbering); busybox traps it by number.
      const rtId = await run('sig-rt', { command: trapping('36', 45), stopSignal: 'SIGRTMINPLUS2' });
      const r = await stopAndExit(rtId);
      assert.equal(r?.exitCode, 45);
      assert.equal(r?.stopSignal, 'SIGRTMINPLUS2');
    });
  });

  describe('details the kubelet relies on', () => {
    it('writes a last line without a newline as a P record', async () => {
      const id = await run('partial', { command: ['sh', '-c', 'echo whole; printf "last words"'] });
      await waitFor('exit', async () => ((await rt().ContainerStatus({ containerId: id, verbose: false })).status?.state === 'CONTAINER_EXITED' ? true : undefined));
      const lines = fs.readFileSync(path.join(podCfg.logDirectory ?? '', 'partial.log'), 'utf8').split('\n').filter(Boolean);
      assert.deepEqual(lines.map((l) => l.split(' ').slice(1).join(' ')), ['stdout F whole', 'stdout P last words']);
    });

    it('runs a host-network pod that asks for a hostname of its own under the node name, as containerd does', async () => {
      const cfg = podConfig(fx, { hostname: 'not-the-node' });
      const own = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      try {
        const id = await startContainer(fx, { id: own, config: cfg }, 'uname', { command: ['sleep', '30'] });
        const r = await rt().ExecSync({ containerId: id, cmd: ['hostname'], timeout: 10 });
        assert.equal(r.stdout.toString('utf8').trim(), os.hostname());
      } finally {
        await rt().StopPodSandbox({ podSandboxId: own });
        await rt().RemovePodSandbox({ podSandboxId: own });
      }
    });

    it('reports the runtime handler the pod asked for, empty when it asked for none', async () => {
      const none = await rt().PodSandboxStatus({ podSandboxId: podId, verbose: false });
      assert.equal(none.status?.runtimeHandler, '');
      const named = (await rt().RunPodSandbox({ config: podConfig(fx), runtimeHandler: 'runc' })).podSandboxId;
      try {
        assert.equal((await rt().PodSandboxStatus({ podSandboxId: named, verbose: false })).status?.runtimeHandler, 'runc');
        const listed = await rt().ListPodSandbox({ filter: { id: named } });
        assert.equal(listed.items[0].runtimeHandler, 'runc');
      } finally {
        await rt().StopPodSandbox({ podSandboxId: named });
        await rt().RemovePodSandbox({ podSandboxId: named });
      }
    });

    it('gives containers the image id PullImage returned as image_ref', async () => {
      const { imageRef } = await fx.berthd.cri.image.PullImage({ image: { image: fx.image } });
      const id = await run('imageid');
      assert.equal((await rt().ContainerStatus({ containerId: id, verbose: false })).status?.imageId, imageRef);
      assert.equal((await rt().ListContainers({ filter: { id } })).containers[0].imageId, imageRef);
    });

    it('reports the runtime features truthfully', async () => {
      const st = await rt().Status({ verbose: false });
      assert.equal(st.features?.supplementalGroupsPolicy, true);
      // Host-network user namespaces only where the default handler does user namespaces at all
      // (test/container/userns.test.ts runs such a pod when the flag is set).
      const def = st.runtimeHandlers.find((h) => h.name === '');
      if (st.features?.userNamespacesHostNetwork) assert.equal(def?.features?.userNamespaces, true);
      assert.ok(st.runtimeHandlers.every((h) => typeof h.features?.userNamespaces === 'boolean'));
    });
  });

  describe('volumes from images', () => {
    let dataRef: string;
    let volRef: string;
    const exec = async (id: string, script: string) => {
      const r = await rt().ExecSync({ containerId: id, cmd: ['sh', '-c', script], timeout: 10 });
      return { code: r.exitCode, out: r.stdout.toString('utf8').trim(), err: r.stderr.toString('utf8') };
    };
    const mountsUnder = (dir: string) => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));

    before(async () => {
      const pusher = new Pusher(fx.registry.host);
      await pusher.pushImage('test/data', '1', {
        layers: [
          tarLayer([
            { name: 'data/', type: 'dir' },
            { name: 'data/hello.txt', body: 'hello from image' },
            { name: 'data/sub/', type: 'dir' },
            { name: 'data/sub/inner.txt', body: 'inner' },
            { name: 'data/link', type: 'symlink', linkName: '/data/sub' },
            { name: 'data/escape', type: 'symlink', linkName: '../../../../../etc' },
          ]),
        ],
        config: {},
      });
      await pusher.pushImage('test/busybox', 'vol', {
        layers: [
          busyboxApplets(),
          tarLayer([
            { name: 'vol/', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
            { name: 'vol/seed.txt', body: 'seeded', mode: 0o640, uid: 1000, gid: 1000 },
          ]),
        ],
        config: { Env: ['PATH=/bin'], Cmd: ['sleep', '3600'], Volumes: { '/vol': {}, '/other': {} } },
      });
      dataRef = `${fx.registry.host}/test/data:1`;
      volRef = `${fx.registry.host}/test/busybox:vol`;
      await fx.berthd.cri.image.PullImage({ image: { image: dataRef } });
      await fx.berthd.cri.image.PullImage({ image: { image: volRef } });
    });

    const imageMount = (containerPath: string, imageSubPath = '') => ({ containerPath, image: { image: dataRef }, imageSubPath });

    it('mounts an image read-only from its snapshots, whole and at a sub path through a symlink inside it', async () => {
      const id = await run('imgvol', { mounts: [imageMount('/iv'), imageMount('/ivsub', 'data/link')] });
      assert.equal((await exec(id, 'cat /iv/data/hello.txt')).out, 'hello from image');
      assert.equal((await exec(id, 'cat /ivsub/inner.txt')).out, 'inner');
      assert.notEqual((await exec(id, 'touch /iv/data/new')).code, 0, 'read-only');
      // No copy: an overlay of the image's layer snapshots, under the container's state dir.
      const dir = path.join(fx.berthd.state, 'containers', id, 'image-volumes');
      const mounts = mountsUnder(dir);
      assert.ok(mounts.some((l) => l.includes(' - overlay ') && l.split(' ')[5].split(',').includes('ro')), mounts.join('\n'));
      // Kept from RemoveImage while mounted; the mount goes with the container, then the image may go.
      await assert.rejects(
        fx.berthd.cri.image.RemoveImage({ image: { image: dataRef } }),
        (err) => grpcCode(err) === grpc.status.FAILED_PRECONDITION && (err as Error).message.includes(id),
      );
      await rt().StopContainer({ containerId: id, timeout: '0' });
      await rt().RemoveContainer({ containerId: id });
      assert.deepEqual(mountsUnder(dir), []);
      assert.equal(fs.existsSync(dir), false);
      await fx.berthd.cri.image.RemoveImage({ image: { image: dataRef } });
      await fx.berthd.cri.image.PullImage({ image: { image: dataRef } });
    });

    it('refuses sub paths that do not exist in the image, symlinks out included, and unpulled images', async () => {
      for (const sub of ['data/missing', 'data/escape', '../../etc']) {
        await assert.rejects(
          rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, `bad-sub-${sub.length}`, { mounts: [imageMount('/x', sub)] }), sandboxConfig: podCfg }),
          (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && /sub path/.test((err as Error).message),
          sub,
        );
      }
      assert.deepEqual(mountsUnder(path.join(fx.berthd.state, 'containers')).filter((l) => l.includes('image-volumes')), []);
      await assert.rejects(
        rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'no-image', { mounts: [{ containerPath: '/x', image: { image: 'nowhere/none:1' } }] }), sandboxConfig: podCfg }),
        (err) => grpcCode(err) === grpc.status.NOT_FOUND,
      );
    });

    it('gives each container its own copy of the image\'s VOLUMEs, with content and ownership, gone with the container', async () => {
      const a = await run('vol-a', {}, volRef);
      assert.equal((await exec(a, 'stat -c "%u:%g %a" /vol')).out, '1000:1000 750');
      assert.equal((await exec(a, 'stat -c "%u:%g %a" /vol/seed.txt; cat /vol/seed.txt')).out, '1000:1000 640\nseeded');
      assert.equal((await exec(a, 'test -d /other && echo dir')).out, 'dir');
      assert.equal((await exec(a, 'echo mine > /vol/new; cat /proc/self/mountinfo | grep -c " /vol "')).out, '1');
      const b = await run('vol-b', {}, volRef);
      assert.equal((await exec(b, 'ls /vol')).out, 'seed.txt');
      const volumes = path.join(fx.berthd.state, 'containers', a, 'volumes');
      assert.ok(fs.readdirSync(volumes).some((d) => fs.existsSync(path.join(volumes, d, 'new'))));
      await rt().StopContainer({ containerId: a, timeout: '0' });
      await rt().RemoveContainer({ containerId: a });
      assert.equal(fs.existsSync(volumes), false);
    });

    it('lets a CRI mount at the same path win over the image\'s VOLUME', async () => {
      const host = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vol-'));
      try {
        fs.writeFileSync(path.join(host, 'from-host'), 'host');
        const id = await run('vol-cri', { mounts: [{ containerPath: '/vol', hostPath: host }] }, volRef);
        assert.equal((await exec(id, 'ls /vol')).out, 'from-host');
      } finally {
        fs.rmSync(host, { recursive: true, force: true });
      }
    });
  });

  describe('CDI devices', () => {
    const share = () => path.join(cdiRoot, 'share');
    const hookOut = () => path.join(cdiRoot, 'hook-state.json');
    before(() => {
      fs.mkdirSync(share());
      fs.writeFileSync(path.join(share(), 'f'), 'shared');
      fs.writeFileSync(
        path.join(cdiDirs[0], 'vendor.json'),
        JSON.stringify({
          cdiVersion: '0.6.0',
          kind: 'vendor.example/dev',
          devices: [
            { name: 'null0', containerEdits: { deviceNodes: [{ path: '/dev/berth-cdi0', hostPath: '/dev/null', permissions: 'rw' }], env: ['CDI_DEV=null0'] } },
          ],
        }),
      );
      fs.writeFileSync(path.join(cdiDirs[0], 'broken.json'), '{ not json');
      fs.writeFileSync(
        path.join(cdiDirs[1], 'gpu.yaml'),
        [
          'cdiVersion: "0.6.0"',
          'kind: other.example/gpu',
          'devices:',
          '  - name: g0',
          '    containerEdits:',
          '      mounts:',
          `        - hostPath: ${share()}`,
          '          containerPath: /cdi-share',
          '          options: [ro, bind]',
          '      hooks:',
          '        - hookName: createRuntime',
          '          path: /bin/sh',
          `          args: [sh, -c, "cat > ${hookOut()}"]`,
          'containerEdits:',
          '  env: [GPU_VENDOR=other]',
          '',
        ].join('\n'),
      );
    });

    it('applies device nodes, env, mounts and hooks of CDI_devices and cdi.k8s.io/ annotations (JSON and YAML specs)', async () => {
      const id = await run('cdi', {
        CDIDevices: [{ name: 'vendor.example/dev=null0' }],
        annotations: { 'cdi.k8s.io/gpu': 'other.example/gpu=g0' },
      });
      const sh = async (script: string) => (await rt().ExecSync({ containerId: id, cmd: ['sh', '-c', script], timeout: 10 })).stdout.toString('utf8').trim();
      assert.match(await sh('ls -l /dev/berth-cdi0'), /^c.* 1, +3 /);
      assert.equal(await sh('echo x > /dev/berth-cdi0 && echo written'), 'written');
      assert.equal(await sh('echo "$CDI_DEV $GPU_VENDOR"'), 'null0 other');
      assert.equal(await sh('cat /cdi-share/f; echo; touch /cdi-share/g 2>/dev/null || echo read-only'), 'shared\nread-only');
      const state = JSON.parse(fs.readFileSync(hookOut(), 'utf8')) as { id: string };
      assert.equal(state.id, id);
    });

    it('refuses a device no spec defines, naming it, and leaves nothing', async () => {
      const before = (await rt().ListContainers({})).containers.length;
      await assert.rejects(
        rt().CreateContainer({
          podSandboxId: podId,
          config: containerConfig(fx.image, 'cdi-unknown', { CDIDevices: [{ name: 'vendor.example/dev=nope' }] }),
          sandboxConfig: podCfg,
        }),
        (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && (err as Error).message.includes('vendor.example/dev=nope'),
      );
      await assert.rejects(
        rt().CreateContainer({
          podSandboxId: podId,
          config: containerConfig(fx.image, 'cdi-unknown2', { annotations: { 'cdi.k8s.io/x': 'broken.example/x=y' } }),
          sandboxConfig: podCfg,
        }),
        (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT && (err as Error).message.includes('broken.example/x=y'),
      );
      assert.equal((await rt().ListContainers({})).containers.length, before);
    });
  });

  describe('CheckpointContainer', () => {
    it('checkpoints through CRIU where criu check passes, else FAILED_PRECONDITION saying why', async () => {
      const id = await run('ckpt');
      const location = path.join(os.tmpdir(), `berth-ckpt-${process.pid}.tar`);
      try {
        if (criuWorks()) {
          await rt().CheckpointContainer({ containerId: id, location, timeout: '30' });
          const listing = execFileSync('tar', ['-tf', location], { encoding: 'utf8' });
          assert.match(listing, /checkpoint\//);
          assert.match(listing, /config\.dump/);
          const s = await rt().ContainerStatus({ containerId: id, verbose: false });
          assert.equal(s.status?.state, 'CONTAINER_RUNNING');
        } else {
          await assert.rejects(rt().CheckpointContainer({ containerId: id, location, timeout: '30' }), (err) => {
            assert.equal(grpcCode(err), grpc.status.FAILED_PRECONDITION);
            assert.match((err as Error).message, /CRIU|criu/);
            return true;
          });
          assert.equal(fs.existsSync(location), false);
        }
      } finally {
        fs.rmSync(location, { force: true });
      }
    });

    it('refuses a relative or missing location, and an unknown container', async () => {
      const id = await run('ckpt2');
      await assert.rejects(rt().CheckpointContainer({ containerId: id, location: '', timeout: '0' }), (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT);
      await assert.rejects(rt().CheckpointContainer({ containerId: id, location: 'rel.tar', timeout: '0' }), (err) => grpcCode(err) === grpc.status.INVALID_ARGUMENT);
      await assert.rejects(
        rt().CheckpointContainer({ containerId: 'f'.repeat(64), location: '/tmp/x.tar', timeout: '0' }),
        (err) => grpcCode(err) === grpc.status.NOT_FOUND,
      );
    });

    it('refuses an exited container with FAILED_PRECONDITION', async () => {
      const id = await run('ckpt3', { command: ['true'] });
      await waitFor('exit', async () => ((await rt().ContainerStatus({ containerId: id, verbose: false })).status?.state === 'CONTAINER_EXITED' ? true : undefined));
      await assert.rejects(
        rt().CheckpointContainer({ containerId: id, location: '/tmp/x.tar', timeout: '0' }),
        (err) => grpcCode(err) === grpc.status.FAILED_PRECONDITION && /not running/.test((err as Error).message),
      );
    });
  });
});
