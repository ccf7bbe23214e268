// ListPodSandbox and ListContainers keep whole encoded replies while nothing
// changed (src/cri/encoded_reply.ts ListReplyCache). Each change a kubelet
// relies on must show in the very next list call, with the kept replies
// warm before it: create, start, an exit the shim notices, stop, remove, a
// dead berth-pause, an image tag moving to another image.
import * as assert from 'node:assert/strict';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from '../container/fixture';
import { makeLayer, Pusher } from '../helpers/registry';

describe('cri: kept list replies follow every change', function () {
  this.timeout(120000);
  let fx: ContainerFixture;

  before(async () => {
    fx = await startContainerFixture();
  });
  after(async () => {
    await fx?.cleanup();
  });

  const rt = () => fx.berthd.cri.runtime;

  /** Every selection the kubelet polls, each asked twice (the second answer is the kept one). */
  async function lists() {
    const all = async () => {
      await rt().ListContainers({ filter: {} });
      return rt().ListContainers({ filter: {} });
    };
    const running = async () => {
      await rt().ListContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } });
      return rt().ListContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } });
    };
    const pods = async () => {
      await rt().ListPodSandbox({});
      return rt().ListPodSandbox({});
    };
    const ready = async () => {
      await rt().ListPodSandbox({ filter: { state: { state: 'SANDBOX_READY' } } });
      return rt().ListPodSandbox({ filter: { state: { state: 'SANDBOX_READY' } } });
    };
    const [c, r, p, pr] = [await all(), await running(), await pods(), await ready()];
    return {
      containerState: (id: string) => c.containers.find((x) => x.id === id)?.state,
      running: (id: string) => r.containers.some((x) => x.id === id),
      podState: (id: string) => p.items.find((x) => x.id === id)?.state,
      ready: (id: string) => pr.items.some((x) => x.id === id),
      image: (id: string) => c.containers.find((x) => x.id === id)?.image?.image,
    };
  }

  it('shows create, start, an exit noticed by the shim, stop and remove at the next call', async () => {
    const config = podConfig(fx);
    let l = await lists();
    const { podSandboxId: pod } = await rt().RunPodSandbox({ config });
    l = await lists();
    assert.equal(l.podState(pod), 'SANDBOX_READY');
    assert.equal(l.ready(pod), true);

    // Runs until /go exists, then exits on its own.
    const cfg = containerConfig(fx.image, 'waits', { command: ['sh', '-c', 'while [ ! -e /go ]; do sleep 0.1; done'] });
    const { containerId: id } = await rt().CreateContainer({ podSandboxId: pod, config: cfg, sandboxConfig: config });
    l = await lists();
    assert.equal(l.containerState(id), 'CONTAINER_CREATED');
    assert.equal(l.running(id), false);

    await rt().StartContainer({ containerId: id });
    l = await lists();
    assert.equal(l.containerState(id), 'CONTAINER_RUNNING');
    assert.equal(l.running(id), true);
    // Narrower selections are never answered from a kept whole list.
    assert.equal((await rt().ListContainers({ filter: { labelSelector: { absent: 'x' } } })).containers.length, 0);
    assert.equal((await rt().ListContainers({ filter: { podSandboxId: 'f'.repeat(12) } })).containers.length, 0);
    assert.equal((await rt().ListPodSandbox({ filter: { id: pod.startsWith('0') ? '1' : '0' } })).items.length, 0);
    assert.equal((await rt().ListPodSandbox({ filter: { labelSelector: { absent: 'x' } } })).items.length, 0);

    await rt().ExecSync({ containerId: id, cmd: ['touch', '/go'], timeout: 10 });
    // Only the shim's exit report changes the record here: no RPC about this container is made while waiting.
    await waitFor('the exit in ListContainers', async () => ((await lists()).containerState(id) === 'CONTAINER_EXITED' ? true : undefined));
    l = await lists();
    assert.equal(l.running(id), false);

    await rt().StopPodSandbox({ podSandboxId: pod });
    l = await lists();
    assert.equal(l.podState(pod), 'SANDBOX_NOTREADY');
    assert.equal(l.ready(pod), false);

    await rt().RemoveContainer({ containerId: id });
    l = await lists();
    assert.equal(l.containerState(id), undefined);

    await rt().RemovePodSandbox({ podSandboxId: pod });
    l = await lists();
    assert.equal(l.podState(pod), undefined);
  });

  it('shows a pod NOTREADY once its berth-pause is found dead', async () => {
    // The default PID namespace mode is POD: the pod gets a berth-pause.
    const { podSandboxId: pod } = await rt().RunPodSandbox({ config: podConfig(fx) });
    const l = await lists();
    assert.equal(l.ready(pod), true);
    const st = await rt().PodSandboxStatus({ podSandboxId: pod, verbose: true });
    const pid = (JSON.parse(st.info.info) as { pid: number }).pid;
    assert.ok(pid > 0);
    process.kill(pid, 'SIGKILL');
    await waitFor('the pod NOTREADY in ListPodSandbox', async () => {
      const now = await lists();
      return now.podState(pod) === 'SANDBOX_NOTREADY' && !now.ready(pod) ? true : undefined;
    });
    await rt().StopPodSandbox({ podSandboxId: pod });
    await rt().RemovePodSandbox({ podSandboxId: pod });
  });

  it("shows a container's image under another name when the name it was shown under is untagged", async () => {
    const pusher = new Pusher(fx.registry.host);
    const image = { layers: [makeLayer({ 'bin/busybox': { copyOf: '/bin/busybox' } })], config: { Env: ['NAMED=twice'], Cmd: ['/bin/busybox', 'sleep', '3600'] } };
    await pusher.pushImage('test/twice', 'first', image);
    await pusher.pushImage('test/twice', 'second', image);
    const [first, second] = [`${fx.registry.host}/test/twice:first`, `${fx.registry.host}/test/twice:second`];
    await fx.berthd.cri.image.PullImage({ image: { image: first } });
    await fx.berthd.cri.image.PullImage({ image: { image: second } });
    const config = podConfig(fx);
    const { podSandboxId: pod } = await rt().RunPodSandbox({ config });
    const { containerId: id } = await rt().CreateContainer({ podSandboxId: pod, config: containerConfig(second, 'twice'), sandboxConfig: config });
    let l = await lists();
    assert.equal(l.image(id), first, "an image is shown under its first tag (as containerd does)");

    await fx.berthd.cri.image.RemoveImage({ image: { image: first } });
    l = await lists();
    assert.equal(l.image(id), second);

    await rt().StopPodSandbox({ podSandboxId: pod });
    await rt().RemovePodSandbox({ podSandboxId: pod });
  });
});
