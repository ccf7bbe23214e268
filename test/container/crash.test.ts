// Crash consistency: berthd is SIGKILLed at each named crash point
// (BERTH_CRASH_AT, src/util/crashpoint.ts) in the middle of a create, stop or
// remove, restarted on the same directories without it, and must then show
// either the whole object or nothing, leak nothing once everything is
// removed, and let the same name be used again.
//
// Point of no return, per operation:
// - CreateContainer: the 'ready' record written after the shim spawned. Every
//   crash point of a create comes before it, so the container is rolled back.
// - StartContainer: `runtime start`. A crash after it but before RUNNING was saved
//   leaves a running container recorded CREATED; start-up asks the runtime and
//   records it RUNNING (or EXITED with its code when it exited meanwhile).
// - RemoveContainer: the 'removing' record. From then on the remove is finished at start.
// - RunPodSandbox: the 'ready' record written last. Crashes before it roll the pod back.
// - StopPodSandbox: none needed; a stop interrupted anywhere leaves the pod listed
//   (NOTREADY once its namespaces are gone) and the kubelet's retry completes it.
// - RemovePodSandbox: the record delete, which comes last; an interrupted remove
//   leaves the pod listed NOTREADY, and the retried remove completes without leaks.
// A rollback that cannot complete at start (busy rootfs, busy cgroup) must not
// keep the name reserved: the kubelet never saw the id and retries the create.
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CrashPointName } from '../../src/util/crashpoint';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import { TestBerthd } from '../helpers/berthd';
import { TestNetwork } from '../network/net_helpers';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

function mountinfoMountpoints(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m);
}

function mountsUnder(dir: string): string[] {
  return mountinfoMountpoints().filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** Live (non-zombie) processes whose command line mentions `needle`. */
function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      if (/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) continue;
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(needle)) out.push(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      // gone
    }
  }
  return out;
}

/** berth-pause processes (they carry no pod path on their command line) whose pid file is under `dir`. */
function pauseProcessesUnder(dir: string): number[] {
  const pids = new Set<number>();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.includes('(berth-pause)') && !/\) Z /.test(stat)) pids.add(Number(pid));
    } catch {
      // gone
    }
  }
  // Only ours: any pause.pid file of this berthd naming one of them.
  const ours: number[] = [];
  const pods = path.join(dir, 'pods');
  if (!fs.existsSync(pods)) return ours;
  for (const id of fs.readdirSync(pods)) {
    try {
      const n = Number(fs.readFileSync(path.join(pods, id, 'ns', 'pause.pid'), 'utf8').trim());
      if (pids.has(n)) ours.push(n);
    } catch {
      // no pause here
    }
  }
  return ours;
}

/** Every cgroup dir for the pod uid: v1 hierarchies and the hybrid cgroup2 mount. */
function podCgroupDirs(uid: string): string[] {
  const found: string[] = [];
  const lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => / - cgroup2? /.test(l));
  for (const l of lines) {
    const p = path.join(l.split(' ')[4] ?? '/nonexistent', 'berth', `pod${uid}`);
    if (fs.existsSync(p)) found.push(p);
  }
  return found;
}

function runcContainers(state: string): string[] {
  const out = execFileSync('runc', ['--root', path.join(state, 'runtime', 'runc'), 'list', '-q'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean);
}

function entries(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

function isGrpcError(err: unknown): err is Error & { code: number } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number';
}

describe('containers and pods: berthd killed at every crash point', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  before(async () => {
    fx = await startContainerFixture();
  });
  after(async () => {
    if (!fx) return;
    // A failed case may have left berthd dead or armed: bring it back without a crash point to clean up.
    await fx.berthd.stop();
    await fx.berthd.launch();
    await fx.cleanup();
  });
  /** The berthd under test: the fixture's (host-network pods), or the one with a CNI network below. */
  let cur: TestBerthd;
  before(() => {
    cur = fx.berthd;
  });
  const rt = () => cur.cri.runtime;
  const uids: string[] = [];

  /** Restarts berthd with BERTH_CRASH_AT=point; the RPC `trigger` must then kill it there. */
  async function crashAt(point: CrashPointName, trigger: () => Promise<unknown>, whileDown?: () => void): Promise<void> {
    await cur.stop();
    await cur.launch({ BERTH_CRASH_AT: point });
    return crashNow(point, trigger, whileDown);
  }

  /** Triggers the crash at `point`; `whileDown` looks at what the dead berthd left before it is restarted. */
  async function crashNow(point: CrashPointName, trigger: () => Promise<unknown>, whileDown?: () => void): Promise<void> {
    const proc = cur.proc;
    assert.ok(proc);
    const died = new Promise<NodeJS.Signals | null>((r) =>
      proc.exitCode !== null || proc.signalCode !== null ? r(proc.signalCode) : proc.once('exit', (_c, sig) => r(sig)),
    );
    await assert.rejects(trigger(), (err: unknown) => {
      // UNAVAILABLE (14) or the connection dropping mid-call (CANCELLED 1 / INTERNAL 13 / UNKNOWN 2).
      assert.ok(isGrpcError(err), `an RPC error, got ${String(err)}`);
      assert.ok([1, 2, 13, 14].includes(err.code), `connection-level error, got code ${err.code}: ${err.message}`);
      return true;
    });
    assert.equal(await died, 'SIGKILL');
    assert.match(cur.output, new RegExp(`crash point ${point} reached`));
    whileDown?.();
    await cur.stop();
    await cur.launch();
  }

  async function runPod(extra: Partial<PodSandboxConfig> = {}): Promise<{ id: string; cfg: PodSandboxConfig }> {
    const cfg = podConfig(fx, {
      linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } },
      ...extra,
    });
    uids.push(cfg.metadata?.uid as string);
    const id = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    return { id, cfg };
  }

  async function createStarted(podId: string, cfg: PodSandboxConfig, name: string): Promise<string> {
    const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, name), sandboxConfig: cfg });
    await rt().StartContainer({ containerId });
    return containerId;
  }

  /** Nothing of the container `id` is left: record, runc state, shim, mount, dirs, snapshot. */
  async function assertContainerGone(id: string): Promise<void> {
    const listed = await rt().ListContainers({});
    assert.equal(listed.containers.find((c) => c.id === id), undefined, 'not listed');
    await assert.rejects(rt().ContainerStatus({ containerId: id, verbose: false }), (e: unknown) => isGrpcError(e) && e.code === 5);
    const st = cur.state;
    assert.ok(!runcContainers(st).includes(id), 'no runc container');
    await waitFor('its shim gone', async () => (processesMentioning(id).length === 0 ? true : undefined), 10000).catch(() => {
      assert.deepEqual(processesMentioning(id), [], 'no shim or container process');
    });
    assert.deepEqual(mountinfoMountpoints().filter((m) => m.includes(id)), [], 'no rootfs mount');
    assert.ok(!entries(path.join(st, 'containers')).includes(id), 'no state/bundle dir');
    assert.ok(!entries(path.join(st, 'shims')).includes(id.slice(0, 32)), 'no shim dir');
    assert.ok(!entries(path.join(cur.root, 'containers')).some((f) => f.includes(id)), 'no record file');
    const meta = fs.readFileSync(path.join(cur.root, 'snapshots', 'metadata.json'), 'utf8');
    assert.ok(!meta.includes(`container-${id}`), 'no snapshot');
  }

  /** Nothing of pod `id` (uid `uid`) is left. */
  async function assertPodGone(id: string, uid: string): Promise<void> {
    const listed = await rt().ListPodSandbox({});
    assert.equal(listed.items.find((p) => p.id === id), undefined, 'pod not listed');
    assert.deepEqual(podCgroupDirs(uid), [], 'no pod cgroup in any hierarchy');
    assert.ok(!entries(path.join(cur.state, 'pods')).includes(id), 'no pod state dir (ns/shm pins)');
    assert.ok(!entries(path.join(cur.root, 'pods')).includes(id), 'no pod files dir');
    assert.deepEqual(mountinfoMountpoints().filter((m) => m.includes(id)), [], 'no ns/shm mount');
  }

  /** Removes every pod, then checks the whole tree is clean. */
  async function removeAllAndAssertClean(): Promise<void> {
    for (const p of (await rt().ListPodSandbox({})).items) {
      await rt().StopPodSandbox({ podSandboxId: p.id });
      await rt().RemovePodSandbox({ podSandboxId: p.id });
    }
    assert.deepEqual((await rt().ListContainers({})).containers, []);
    const st = cur.state;
    await waitFor('shims gone', async () => (processesMentioning(st).length === 0 ? true : undefined), 10000).catch(() => {
      assert.deepEqual(processesMentioning(st), [], 'no berth-shim left');
    });
    assert.deepEqual(pauseProcessesUnder(st), [], 'no berth-pause left');
    assert.deepEqual(mountsUnder(cur.dir), [], 'no mounts under the test dir');
    assert.deepEqual(runcContainers(st), [], 'no runc containers');
    assert.deepEqual(entries(path.join(st, 'containers')), [], 'no container state dirs');
    assert.deepEqual(entries(path.join(st, 'shims')), [], 'no shim dirs');
    assert.deepEqual(entries(path.join(st, 'pods')).filter((n) => /^[0-9a-f]{64}$/.test(n)), [], 'no pod state dirs');
    assert.deepEqual(entries(path.join(cur.root, 'pods')).filter((n) => /^[0-9a-f]{64}$/.test(n)), [], 'no pod file dirs');
    for (const uid of uids) assert.deepEqual(podCgroupDirs(uid), [], `no cgroup left for pod uid ${uid}`);
    const meta = fs.readFileSync(path.join(cur.root, 'snapshots', 'metadata.json'), 'utf8');
    assert.ok(!meta.includes('container-'), 'no container snapshots');
  }

  // ---- CreateContainer ------------------------------------------------------

  const createPoints: CrashPointName[] = [
    'container-create:after-record',
    'container-create:after-snapshot',
    'container-create:after-mount',
    'container-create:after-bundle',
    'container-create:after-shim',
  ];
  for (const point of createPoints) {
    it(`CreateContainer killed at ${point}: rolled back at start, name reusable`, async () => {
      await cur.stop();
      await cur.launch({ BERTH_CRASH_AT: point });
      const { id: podId, cfg } = await runPod();
      let id = '';
      await crashNow(
        point,
        () => rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'c'), sandboxConfig: cfg }),
        () => {
          // What the create had done when it died, so the test knows the rollback has real work.
          const recs = entries(path.join(cur.root, 'containers')).filter((f) => /^[0-9a-f]{64}\.json$/.test(f));
          assert.equal(recs.length, 1, 'the creating record is on disk');
          id = (recs[0] as string).slice(0, 64);
          const meta = fs.readFileSync(path.join(cur.root, 'snapshots', 'metadata.json'), 'utf8');
          const step = createPoints.indexOf(point);
          assert.equal(meta.includes(`container-${id}`), step >= 1, 'snapshot prepared');
          assert.equal(mountinfoMountpoints().some((m) => m.includes(id)), step >= 2, 'rootfs mounted');
          assert.equal(fs.existsSync(path.join(cur.state, 'containers', id, 'bundle', 'config.json')), step >= 3, 'bundle written');
          assert.equal(runcContainers(cur.state).includes(id), step >= 4, 'runc container created');
          assert.equal(processesMentioning(id).length > 0, step >= 4, 'shim running');
        },
      );
      await assertContainerGone(id);
      assert.deepEqual((await rt().ListContainers({ filter: { podSandboxId: podId } })).containers, []);
      assert.deepEqual(runcContainers(cur.state), []);
      assert.deepEqual(entries(path.join(cur.state, 'shims')), []);
      assert.deepEqual(
        mountsUnder(cur.state).filter((m) => !m.startsWith(path.join(cur.state, 'pods') + '/')),
        [],
        'no container mounts',
      );
      // The pod is untouched and the name is free again.
      const pod = (await rt().ListPodSandbox({})).items.find((p) => p.id === podId);
      assert.equal(pod?.state, 'SANDBOX_READY');
      const again = await createStarted(podId, cfg, 'c');
      const r = await rt().ExecSync({ containerId: again, cmd: ['echo', 'ok'], timeout: '10' });
      assert.equal(r.stdout.toString(), 'ok\n');
      await removeAllAndAssertClean();
    });
  }

  it('CreateContainer killed at container-create:after-mount, rollback blocked by a busy rootfs: name still free, leftover removed with the pod', async () => {
    await cur.stop();
    await cur.launch({ BERTH_CRASH_AT: 'container-create:after-mount' });
    const { id: podId, cfg } = await runPod();
    let id = '';
    let holder: ChildProcess | undefined;
    try {
      await crashNow(
        'container-create:after-mount',
        () => rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'c'), sandboxConfig: cfg }),
        () => {
          id = (entries(path.join(cur.root, 'containers'))[0] ?? '').slice(0, 64);
          // A process with its cwd in the rootfs makes the unmount fail with EBUSY.
          holder = spawn('sleep', ['120'], { cwd: path.join(cur.state, 'containers', id, 'bundle', 'rootfs'), stdio: 'ignore' });
        },
      );
      assert.match(cur.output, /could not clean up an interrupted container/);
      assert.deepEqual((await rt().ListContainers({})).containers, [], 'the half-created container stays hidden');
      // The kubelet's retry of the create must not be refused with AlreadyExists.
      const again = await createStarted(podId, cfg, 'c');
      assert.notEqual(again, id);
      holder?.kill('SIGKILL');
      await new Promise((r) => holder?.once('exit', r));
      holder = undefined;
      // Removing the pod removes the leftover too, and leaves the new container's name reservation alone until then.
      await rt().StopPodSandbox({ podSandboxId: podId });
      await rt().RemovePodSandbox({ podSandboxId: podId });
      await assertContainerGone(id);
      await assertContainerGone(again);
      await removeAllAndAssertClean();
    } finally {
      holder?.kill('SIGKILL');
    }
  });

  // ---- RemoveContainer ------------------------------------------------------

  const removePoints: CrashPointName[] = [
    'container-remove:after-removing-record',
    'container-remove:after-runtime-delete',
    'container-remove:after-unmount',
  ];
  for (const point of removePoints) {
    it(`RemoveContainer killed at ${point}: finished at start, nothing leaks`, async () => {
      await cur.stop();
      await cur.launch({ BERTH_CRASH_AT: point });
      const { id: podId, cfg } = await runPod();
      const cid = await createStarted(podId, cfg, 'c');
      await rt().StopContainer({ containerId: cid, timeout: '0' });
      await crashNow(
        point,
        () => rt().RemoveContainer({ containerId: cid }),
        () => {
          const step = removePoints.indexOf(point);
          assert.ok(fs.existsSync(path.join(cur.root, 'containers', `${cid}.json`)), 'the removing record is on disk');
          assert.equal(runcContainers(cur.state).includes(cid), step < 1, 'runc container still there');
          assert.equal(mountinfoMountpoints().some((m) => m.includes(cid)), step < 2, 'rootfs still mounted');
          assert.ok(fs.existsSync(path.join(cur.state, 'containers', cid)), 'state dir still there');
        },
      );
      await assertContainerGone(cid);
      const again = await createStarted(podId, cfg, 'c');
      assert.notEqual(again, cid);
      await removeAllAndAssertClean();
    });
  }

  it('RemoveContainer of a running container killed at container-remove:after-runtime-delete: finished at start', async () => {
    await cur.stop();
    await cur.launch({ BERTH_CRASH_AT: 'container-remove:after-runtime-delete' });
    const { id: podId, cfg } = await runPod();
    const cid = await createStarted(podId, cfg, 'c');
    await crashNow('container-remove:after-runtime-delete', () => rt().RemoveContainer({ containerId: cid }));
    await assertContainerGone(cid);
    await createStarted(podId, cfg, 'c');
    await removeAllAndAssertClean();
  });

  // ---- StartContainer -----------------------------------------------------------

  it('StartContainer killed at container-start:after-runtime-start: the container is RUNNING after the restart, and stops', async () => {
    await cur.stop();
    await cur.launch({ BERTH_CRASH_AT: 'container-start:after-runtime-start' });
    const { id: podId, cfg } = await runPod();
    const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'c'), sandboxConfig: cfg });
    await crashNow('container-start:after-runtime-start', () => rt().StartContainer({ containerId }));
    const s = (await rt().ContainerStatus({ containerId, verbose: false })).status;
    assert.equal(s?.state, 'CONTAINER_RUNNING');
    assert.notEqual(s?.startedAt, '0', 'a start time is recorded');
    const r = await rt().ExecSync({ containerId, cmd: ['echo', 'ok'], timeout: '10' });
    assert.equal(r.stdout.toString(), 'ok\n');
    // Its exit is followed again: stopping it records the kill.
    await rt().StopContainer({ containerId, timeout: '0' });
    const after = (await rt().ContainerStatus({ containerId, verbose: false })).status;
    assert.equal(after?.state, 'CONTAINER_EXITED');
    assert.equal(after?.exitCode, 137);
    await removeAllAndAssertClean();
  });

  it('StartContainer killed at container-start:after-runtime-start, container exits while berthd is down: EXITED with its code', async () => {
    await cur.stop();
    await cur.launch({ BERTH_CRASH_AT: 'container-start:after-runtime-start' });
    const { id: podId, cfg } = await runPod();
    const config = containerConfig(fx.image, 'c', { command: ['sh', '-c', 'exit 3'] });
    const { containerId } = await rt().CreateContainer({ podSandboxId: podId, config, sandboxConfig: cfg });
    await crashNow('container-start:after-runtime-start', () => rt().StartContainer({ containerId }));
    const s = await waitFor('exit recorded', async () => {
      const st = (await rt().ContainerStatus({ containerId, verbose: false })).status;
      return st?.state === 'CONTAINER_EXITED' ? st : undefined;
    });
    assert.equal(s.exitCode, 3);
    await removeAllAndAssertClean();
  });

  // ---- RunPodSandbox ----------------------------------------------------------

  const runPoints: CrashPointName[] = ['pod-run:after-record', 'pod-run:after-cgroup', 'pod-run:after-pin'];
  for (const point of runPoints) {
    it(`RunPodSandbox killed at ${point}: rolled back at start, name reusable`, async () => {
      const cfg = podConfig(fx, { linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } } });
      const uid = cfg.metadata?.uid as string;
      uids.push(uid);
      const podsBefore = new Set(entries(path.join(cur.state, 'pods')));
      await crashAt(point, () => rt().RunPodSandbox({ config: cfg }), () => {
        const step = runPoints.indexOf(point);
        assert.equal(podCgroupDirs(uid).length > 0, step >= 1, 'pod cgroup made');
        assert.equal(pauseProcessesUnder(cur.state).length, step >= 2 ? 1 : 0, 'berth-pause running');
        assert.equal(mountsUnder(path.join(cur.state, 'pods')).some((m) => m.endsWith('/ns/pid')), step >= 2, 'pid ns pinned');
      });
      assert.deepEqual((await rt().ListPodSandbox({})).items, []);
      const leftover = entries(path.join(cur.state, 'pods')).filter((n) => !podsBefore.has(n) && /^[0-9a-f]{64}$/.test(n));
      assert.deepEqual(leftover, [], 'no pod state dir');
      assert.deepEqual(podCgroupDirs(uid), [], 'no pod cgroup');
      assert.deepEqual(pauseProcessesUnder(cur.state), [], 'no berth-pause');
      assert.deepEqual(mountsUnder(path.join(cur.state, 'pods')).filter((m) => m !== path.join(cur.state, 'pods')), []);
      // Same name, uid and attempt again: the reservation was released.
      const id = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      const cid = await createStarted(id, cfg, 'c');
      assert.equal((await rt().ContainerStatus({ containerId: cid, verbose: false })).status?.state, 'CONTAINER_RUNNING');
      await removeAllAndAssertClean();
    });
  }

  it('RunPodSandbox killed at pod-run:after-cgroup, rollback blocked by a busy cgroup: name still free, leftover rolled back at the next start', async () => {
    const cfg = podConfig(fx, { linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD' } } } });
    const uid = cfg.metadata?.uid as string;
    uids.push(uid);
    let holder: ChildProcess | undefined;
    try {
      await crashAt('pod-run:after-cgroup', () => rt().RunPodSandbox({ config: cfg }), () => {
        // A process in the pod cgroup makes its rmdir fail (EBUSY).
        const pids = podCgroupDirs(uid).find((d) => d.includes('/pids/'));
        assert.ok(pids, 'a v1 pids hierarchy');
        holder = spawn('sleep', ['120'], { stdio: 'ignore' });
        fs.writeFileSync(path.join(pids, 'cgroup.procs'), String(holder.pid));
      });
      assert.match(cur.output, /rollback of a half-created pod sandbox failed/);
      assert.deepEqual((await rt().ListPodSandbox({})).items, [], 'the half-created pod stays hidden');
      // The kubelet retries with the same attempt (it never saw the pod): that must not be AlreadyExists.
      const id = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      await createStarted(id, cfg, 'c');
      holder?.kill('SIGKILL');
      await new Promise((r) => holder?.once('exit', r));
      holder = undefined;
      await rt().StopPodSandbox({ podSandboxId: id });
      await rt().RemovePodSandbox({ podSandboxId: id });
      // The next start rolls the leftover back, cgroup included.
      await cur.stop();
      await cur.launch();
      await removeAllAndAssertClean();
    } finally {
      holder?.kill('SIGKILL');
    }
  });

  // ---- StopPodSandbox / RemovePodSandbox --------------------------------------

  const stopPoints: [CrashPointName, 'SANDBOX_READY' | 'SANDBOX_NOTREADY'][] = [
    // Containers stopped, namespaces still pinned and berth-pause alive: still READY, the kubelet stops it again.
    ['pod-stop:after-containers-stopped', 'SANDBOX_READY'],
    // Namespaces gone but the record still says ready: load() marks it NOTREADY.
    ['pod-stop:after-resources', 'SANDBOX_NOTREADY'],
  ];
  for (const [point, stateAfter] of stopPoints) {
    it(`StopPodSandbox killed at ${point}: pod listed ${stateAfter}, stop and remove complete`, async () => {
      await cur.stop();
      await cur.launch({ BERTH_CRASH_AT: point });
      const { id: podId, cfg } = await runPod();
      const cid = await createStarted(podId, cfg, 'c');
      await crashNow(point, () => rt().StopPodSandbox({ podSandboxId: podId }));
      const pod = (await rt().ListPodSandbox({})).items.find((p) => p.id === podId);
      assert.equal(pod?.state, stateAfter);
      const c = await rt().ContainerStatus({ containerId: cid, verbose: false });
      assert.equal(c.status?.state, 'CONTAINER_EXITED');
      await rt().StopPodSandbox({ podSandboxId: podId });
      assert.equal((await rt().ListPodSandbox({})).items.find((p) => p.id === podId)?.state, 'SANDBOX_NOTREADY');
      await rt().RemovePodSandbox({ podSandboxId: podId });
      await assertContainerGone(cid);
      await assertPodGone(podId, cfg.metadata?.uid as string);
      const again = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      assert.notEqual(again, podId);
      await removeAllAndAssertClean();
    });
  }

  it('RemovePodSandbox removes the containers side by side: one blocked by a busy rootfs leaves the others gone and the pod listed; the retry completes', async () => {
    const { id: podId, cfg } = await runPod();
    const ids = [await createStarted(podId, cfg, 'a'), await createStarted(podId, cfg, 'b'), await createStarted(podId, cfg, 'c')];
    const blocked = ids[1];
    // A process with its cwd in the rootfs makes the unmount fail with EBUSY: at the stop, which leaves it to the removal, then there.
    let holder: ChildProcess | undefined = spawn('sleep', ['120'], { cwd: path.join(cur.state, 'containers', blocked, 'bundle', 'rootfs'), stdio: 'ignore' });
    try {
      await rt().StopPodSandbox({ podSandboxId: podId });
      // The stop took the runtime side of the others with it (runc state, shim, rootfs mount); their records stay.
      for (const id of [ids[0], ids[2]]) {
        assert.equal((await rt().ContainerStatus({ containerId: id, verbose: false })).status?.state, 'CONTAINER_EXITED');
        assert.ok(!runcContainers(cur.state).includes(id), 'no runc container after the stop');
        assert.deepEqual(mountinfoMountpoints().filter((m) => m.includes(id)), [], 'no rootfs mount after the stop');
      }
      assert.ok(mountinfoMountpoints().some((m) => m.includes(blocked)), 'the busy rootfs is left to the removal');
      await assert.rejects(rt().RemovePodSandbox({ podSandboxId: podId }), new RegExp(`removing container ${blocked}`));
      // Neither the one before nor the one after the blocked container was held back by it.
      for (const id of [ids[0], ids[2]]) await assertContainerGone(id);
      assert.deepEqual((await rt().ListContainers({ filter: { podSandboxId: podId } })).containers.map((c) => c.id), [blocked]);
      assert.equal((await rt().ListPodSandbox({})).items.find((p) => p.id === podId)?.state, 'SANDBOX_NOTREADY');
      holder.kill('SIGKILL');
      await new Promise((r) => holder?.once('exit', r));
      holder = undefined;
      await rt().RemovePodSandbox({ podSandboxId: podId });
      await assertContainerGone(blocked);
      await assertPodGone(podId, cfg.metadata?.uid as string);
      await removeAllAndAssertClean();
    } finally {
      holder?.kill('SIGKILL');
    }
  });

  const podRemovePoints: CrashPointName[] = ['pod-remove:after-containers-removed', 'pod-remove:after-resources'];
  for (const point of podRemovePoints) {
    it(`RemovePodSandbox killed at ${point}: pod listed NOTREADY, the retried remove completes`, async () => {
      await cur.stop();
      await cur.launch({ BERTH_CRASH_AT: point });
      const { id: podId, cfg } = await runPod();
      const cid = await createStarted(podId, cfg, 'c');
      await rt().StopPodSandbox({ podSandboxId: podId });
      await crashNow(point, () => rt().RemovePodSandbox({ podSandboxId: podId }));
      await assertContainerGone(cid);
      const pod = (await rt().ListPodSandbox({})).items.find((p) => p.id === podId);
      assert.equal(pod?.state, 'SANDBOX_NOTREADY');
      await rt().RemovePodSandbox({ podSandboxId: podId });
      await assertPodGone(podId, cfg.metadata?.uid as string);
      const again = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      assert.notEqual(again, podId);
      await removeAllAndAssertClean();
    });
  }

  // ---- with a CNI pod network (netns pinned, bridge + host-local + portmap) ----

  describe('pods on a CNI network', () => {
    let net: TestNetwork;
    let netBerthd: TestBerthd | undefined;
    let hostBerthd: TestBerthd;
    before(async () => {
      hostBerthd = cur;
      net = new TestNetwork();
      net.writeConflist();
      netBerthd = await TestBerthd.start({
        configToml: `[cni]\nconf_dir = ${JSON.stringify(net.confDir)}\nbin_dirs = ["/usr/lib/cni"]\n`,
      });
      await netBerthd.cri.image.PullImage({ image: { image: fx.image } });
      cur = netBerthd;
    });
    after(async () => {
      cur = hostBerthd;
      try {
        if (netBerthd) {
          await netBerthd.stop();
          await netBerthd.launch();
          for (const p of (await netBerthd.cri.runtime.ListPodSandbox({})).items) {
            await netBerthd.cri.runtime.StopPodSandbox({ podSandboxId: p.id });
            await netBerthd.cri.runtime.RemovePodSandbox({ podSandboxId: p.id });
          }
          await netBerthd.cleanup();
        }
      } finally {
        await net?.cleanup();
      }
    });

    const podNetConfig = (): PodSandboxConfig =>
      podConfig(fx, { linux: { securityContext: { namespaceOptions: { network: 'POD', pid: 'POD' } } } });

    async function assertNetworkClean(): Promise<void> {
      assert.deepEqual(net.leases(), [], 'no IP leases held');
      assert.deepEqual(await net.bridgePorts(), [], 'no veths on the bridge');
      assert.deepEqual(await net.iptablesMentioning(net.network), [], 'no iptables rules of the network');
    }

    const netRunPoints: CrashPointName[] = ['pod-run:after-record', 'pod-run:after-pin', 'pod-run:after-network'];
    for (const point of netRunPoints) {
      it(`RunPodSandbox (pod network) killed at ${point}: rolled back with its network, name reusable`, async () => {
        const cfg = podNetConfig();
        const uid = cfg.metadata?.uid as string;
        uids.push(uid);
        await crashAt(point, () => rt().RunPodSandbox({ config: cfg }), () => {
          const step = netRunPoints.indexOf(point);
          assert.equal(mountsUnder(path.join(cur.state, 'pods')).some((m) => m.endsWith('/ns/net')), step >= 1, 'netns pinned');
          assert.equal(net.leases().length, step >= 2 ? 1 : 0, 'IP lease held');
        });
        assert.deepEqual((await rt().ListPodSandbox({})).items, []);
        assert.deepEqual(entries(path.join(cur.state, 'pods')).filter((n) => /^[0-9a-f]{64}$/.test(n)), [], 'no netns/ns files');
        assert.deepEqual(podCgroupDirs(uid), [], 'no pod cgroup');
        assert.deepEqual(pauseProcessesUnder(cur.state), [], 'no berth-pause');
        await assertNetworkClean();
        const id = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
        const status = await rt().PodSandboxStatus({ podSandboxId: id, verbose: false });
        assert.match(status.status?.network?.ip ?? '', /^10\.91\./);
        await createStarted(id, cfg, 'c');
        await removeAllAndAssertClean();
        await assertNetworkClean();
      });
    }

    it('RemovePodSandbox (pod network) killed at pod-remove:after-containers-removed: the retried remove frees the network', async () => {
      await cur.stop();
      await cur.launch({ BERTH_CRASH_AT: 'pod-remove:after-containers-removed' });
      const cfg = podNetConfig();
      uids.push(cfg.metadata?.uid as string);
      const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
      const cid = await createStarted(podId, cfg, 'c');
      await crashNow('pod-remove:after-containers-removed', () => rt().RemovePodSandbox({ podSandboxId: podId }));
      await assertContainerGone(cid);
      assert.equal((await rt().ListPodSandbox({})).items.find((p) => p.id === podId)?.state, 'SANDBOX_NOTREADY');
      await rt().RemovePodSandbox({ podSandboxId: podId });
      await assertPodGone(podId, cfg.metadata?.uid as string);
      await assertNetworkClean();
      await removeAllAndAssertClean();
    });
  });
});
