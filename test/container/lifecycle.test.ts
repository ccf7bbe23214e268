import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { Limits, truncationMarker } from '../../src/limits';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';
import { probeHost } from '../../src/runtime/spec/host_info';

function code(err: unknown): number | undefined {
  return (err as grpc.ServiceError).code;
}

describe('containers: lifecycle through a real berthd and runc', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  let podId: string;
  const sandboxConfig = () => podConfig(fx);
  let podCfg: ReturnType<typeof podConfig>;

  before(async () => {
    fx = await startContainerFixture();
    podCfg = sandboxConfig();
    podId = (await fx.berthd.cri.runtime.RunPodSandbox({ config: podCfg })).podSandboxId;
  });
  after(async () => {
    await fx?.cleanup();
  });

  const rt = () => fx.berthd.cri.runtime;

  async function run(name: string, extra: Parameters<typeof containerConfig>[2] = {}, image?: string): Promise<string> {
    const { containerId } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(image ?? fx.image, name, extra),
      sandboxConfig: podCfg,
    });
    await rt().StartContainer({ containerId });
    return containerId;
  }

  async function exited(id: string) {
    return waitFor('container exit', async () => {
      const s = await rt().ContainerStatus({ containerId: id, verbose: false });
      return s.status?.state === 'CONTAINER_EXITED' ? s.status : undefined;
    });
  }

  it('creates, starts, lists, inspects, stops and removes a container', async () => {
    const { containerId: id } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(fx.image, 'life', { labels: { app: 'life' }, annotations: { note: 'x' } }),
      sandboxConfig: podCfg,
    });
    let s = await rt().ContainerStatus({ containerId: id, verbose: false });
    assert.equal(s.status?.state, 'CONTAINER_CREATED');
    assert.ok(BigInt(s.status?.createdAt ?? '0') > 0n);
    assert.equal(s.status?.startedAt, '0');
    await rt().StartContainer({ containerId: id });
    s = await rt().ContainerStatus({ containerId: id, verbose: true });
    assert.equal(s.status?.state, 'CONTAINER_RUNNING');
    assert.ok(BigInt(s.status?.startedAt ?? '0') >= BigInt(s.status?.createdAt ?? '0'));
    assert.equal(s.status?.labels.app, 'life');
    assert.equal(s.status?.annotations.note, 'x');
    assert.equal(s.status?.logPath, path.join(podCfg.logDirectory as string, 'life.log'));
    assert.match(s.status?.imageRef ?? '', /^127\.0\.0\.1:\d+\/test\/busybox@sha256:[0-9a-f]{64}$/);
    assert.match(s.status?.imageId ?? '', /^sha256:[0-9a-f]{64}$/);
    const info = JSON.parse(s.info.info) as { pid: number; runtimeSpec: { process: { args: string[] } } };
    assert.ok(info.pid > 0);
    assert.deepEqual(info.runtimeSpec.process.args, ['sleep', '3600']);

    const byLabel = await rt().ListContainers({ filter: { labelSelector: { app: 'life' } } });
    assert.deepEqual(byLabel.containers.map((c) => c.id), [id]);
    const byPrefix = await rt().ListContainers({ filter: { id: id.slice(0, 12) } });
    assert.deepEqual(byPrefix.containers.map((c) => c.id), [id]);
    const running = await rt().ListContainers({ filter: { state: { state: 'CONTAINER_RUNNING' }, podSandboxId: podId } });
    assert.ok(running.containers.some((c) => c.id === id));
    const none = await rt().ListContainers({ filter: { state: { state: 'CONTAINER_EXITED' }, labelSelector: { app: 'life' } } });
    assert.equal(none.containers.length, 0);

    await assert.rejects(rt().StartContainer({ containerId: id }), (e) => code(e) === 9); // FAILED_PRECONDITION
    await rt().StopContainer({ containerId: id, timeout: '0' });
    s = await rt().ContainerStatus({ containerId: id, verbose: false });
    assert.equal(s.status?.state, 'CONTAINER_EXITED');
    assert.equal(s.status?.exitCode, 137);
    await rt().StopContainer({ containerId: id, timeout: '0' }); // idempotent
    await rt().RemoveContainer({ containerId: id });
    await rt().RemoveContainer({ containerId: id }); // idempotent
    await rt().StopContainer({ containerId: id, timeout: '0' }); // a missing container stops fine
    await assert.rejects(rt().ContainerStatus({ containerId: id, verbose: false }), (e) => code(e) === 5);
  });

  it('records exit codes with the Completed / Error reasons', async () => {
    const ok = await run('exit0', { command: ['true'] });
    const bad = await run('exit3', { command: ['sh', '-c', 'exit 3'] });
    const s0 = await exited(ok);
    const s3 = await exited(bad);
    assert.equal(s0.exitCode, 0);
    assert.equal(s0.reason, 'Completed');
    assert.equal(s3.exitCode, 3);
    assert.equal(s3.reason, 'Error');
    assert.ok(BigInt(s3.finishedAt) >= BigInt(s3.startedAt));
  });

  it('refuses bad requests with clear statuses and leaves nothing behind', async () => {
    await assert.rejects(
      rt().CreateContainer({ podSandboxId: 'nope', config: containerConfig(fx.image, 'x'), sandboxConfig: podCfg }),
      (e) => code(e) === 5 && /nope/.test((e as grpc.ServiceError).details),
    );
    await assert.rejects(
      rt().CreateContainer({ podSandboxId: podId, config: containerConfig('127.0.0.1:1/missing:1', 'x'), sandboxConfig: podCfg }),
      (e) => code(e) === 5 && /pull it first/.test((e as grpc.ServiceError).details),
    );
    await assert.rejects(
      rt().CreateContainer({ podSandboxId: podId, config: { image: { image: fx.image } }, sandboxConfig: podCfg }),
      (e) => code(e) === 3,
    );
    await assert.rejects(
      rt().CreateContainer({
        podSandboxId: podId,
        config: containerConfig(fx.image, 'badmount', { mounts: [{ containerPath: '/x', hostPath: '/does/not/exist/berth' }] }),
        sandboxConfig: podCfg,
      }),
      (e) => code(e) === 3 && /\/does\/not\/exist\/berth/.test((e as grpc.ServiceError).details),
    );
    const list = await rt().ListContainers({ filter: { podSandboxId: podId } });
    assert.ok(!list.containers.some((c) => c.metadata?.name === 'badmount'));
    const leftovers = fs
      .readdirSync(path.join(fx.berthd.state, 'containers'))
      .filter((id) => !list.containers.some((c) => c.id === id));
    assert.deepEqual(leftovers, []);
  });

  it('a create refused by its spec while its rootfs is mounted beside it leaves no mount or snapshot behind', async () => {
    // The spec fails at once (missing host path); the snapshot and mount run beside it and must be rolled back after they land.
    await assert.rejects(
      rt().CreateContainer({
        podSandboxId: podId,
        config: containerConfig(fx.image, 'badmount2', { mounts: [{ containerPath: '/x', hostPath: '/does/not/exist/berth2' }] }),
        sandboxConfig: podCfg,
      }),
      (e) => code(e) === 3,
    );
    await new Promise((r) => setTimeout(r, 200)); // a step that outlived the rollback would have landed by now
    const live = new Set((await rt().ListContainers({})).containers.map((c) => c.id));
    const containersDir = path.join(fx.berthd.state, 'containers') + '/';
    const strayMounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(containersDir) && !live.has(m.slice(containersDir.length, containersDir.length + 64)));
    assert.deepEqual(strayMounts, []);
    const meta = fs.readFileSync(path.join(fx.berthd.root, 'snapshots', 'metadata.json'), 'utf8');
    const straySnapshots = [...meta.matchAll(/container-([0-9a-f]{64})/g)].map((m) => m[1]).filter((id) => !live.has(id));
    assert.deepEqual(straySnapshots, []);
  });

  it('refuses a second container with the same name, also when created concurrently', async () => {
    const cfg = containerConfig(fx.image, 'twin');
    const results = await Promise.allSettled([
      rt().CreateContainer({ podSandboxId: podId, config: cfg, sandboxConfig: podCfg }),
      rt().CreateContainer({ podSandboxId: podId, config: cfg, sandboxConfig: podCfg }),
      rt().CreateContainer({ podSandboxId: podId, config: cfg, sandboxConfig: podCfg }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const dup = results.filter((r) => r.status === 'rejected' && code(r.reason) === 6);
    assert.equal(ok.length, 1);
    assert.equal(dup.length, 2);
  });

  it('stops with the image StopSignal, then SIGKILL after the timeout', async () => {
    // The custom image's StopSignal is SIGUSR1; the container exits 42 on it.
    const polite = await run(
      'polite',
      { command: ['sh', '-c', 'trap "exit 42" USR1; while true; do sleep 0.1; done'] },
      fx.image2,
    );
    await new Promise((r) => setTimeout(r, 300));
    await rt().StopContainer({ containerId: polite, timeout: '10' });
    const s1 = await exited(polite);
    assert.equal(s1.exitCode, 42);

    const stubborn = await run('stubborn', { command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done'] });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await rt().StopContainer({ containerId: stubborn, timeout: '1' });
    const s2 = await exited(stubborn);
    assert.equal(s2.exitCode, 137);
    assert.ok(Date.now() - t0 >= 900, 'waited for the timeout before SIGKILL');
  });

  it('stops waiting when the client gives up, and does not escalate to SIGKILL on its own', async () => {
    const stubborn = await run('deaf', { command: ['sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done'] });
    await new Promise((r) => setTimeout(r, 300));
    // A 3 s stop whose client leaves after 1 s: berth must not kill at 3 s by itself.
    await assert.rejects(rt().StopContainer({ containerId: stubborn, timeout: '3' }, { deadlineMs: 1000 }), (e: unknown) => code(e) === 4);
    await new Promise((r) => setTimeout(r, 3500));
    const s = await rt().ContainerStatus({ containerId: stubborn, verbose: false });
    assert.equal(s.status?.state, 'CONTAINER_RUNNING', 'the container that ignores SIGTERM still runs');
    // The next stop decides again, and this time waits it out.
    await rt().StopContainer({ containerId: stubborn, timeout: '1' });
    assert.equal((await exited(stubborn)).exitCode, 137);
  });

  it('writes logs in the CRI format, splits long lines, and reopens the log', async () => {
    const id = await run('logger', {
      command: ['sh', '-c', 'echo out; echo err >&2; head -c 20000 /dev/zero | tr "\\0" a; echo; sleep 2; echo after'],
    });
    const log = path.join(podCfg.logDirectory as string, 'logger.log');
    // The long line's last (F) record: a partial (P) record also ends in "a\n".
    await waitFor('log lines', async () => (fs.existsSync(log) && / stdout F a+\n/.test(fs.readFileSync(log, 'utf8')) ? true : undefined));
    const lines = fs.readFileSync(log, 'utf8').trimEnd().split('\n');
    const re = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (P|F) (.*)$/;
    for (const l of lines) assert.match(l, re);
    assert.ok(lines.some((l) => / stdout F out$/.test(l)));
    assert.ok(lines.some((l) => / stderr F err$/.test(l)));
    const long = lines.filter((l) => / stdout [PF] a+$/.test(l));
    assert.ok(long.length >= 2, 'long line split');
    assert.match(long[0], / stdout P /);
    assert.match(long[long.length - 1], / stdout F /);
    assert.equal(long.map((l) => (re.exec(l) as RegExpExecArray)[4]).join('').length, 20000);
    fs.renameSync(log, `${log}.1`);
    await rt().ReopenContainerLog({ containerId: id });
    await exited(id);
    assert.match(fs.readFileSync(log, 'utf8'), / stdout F after\n$/);
  });

  it('refuses a log_path that is absolute or climbs out of the log_directory', async () => {
    for (const logPath of ['/etc/berth-evil.log', '../../../../etc/berth-evil.log', 'a/../../evil.log', '..', '.']) {
      await assert.rejects(
        rt().CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, `badlog${logPath.length}`, { logPath }), sandboxConfig: podCfg }),
        (e) => code(e) === 3 && /log_path/.test((e as grpc.ServiceError).details),
        logPath,
      );
    }
    assert.equal(fs.existsSync('/etc/berth-evil.log'), false);
    // Inside the directory is fine, subdirectories included (the kubelet uses <name>/<restart>.log).
    const id = await run('goodlog', { logPath: 'goodlog/./0.log' });
    assert.ok(id);
  });

  it('ExecSync cuts each stream at its cap with a marker instead of failing with RESOURCE_EXHAUSTED', async () => {
    const id = await run('chatty');
    // 12 MiB on each stream: 24 MiB would not fit one 16 MiB reply.
    const r = await rt().ExecSync({
      containerId: id,
      cmd: ['sh', '-c', 'head -c 12582912 /dev/zero; head -c 12582912 /dev/zero >&2; exit 3'],
      timeout: '60',
    });
    const marker = truncationMarker(Limits.execSyncStreamBytes);
    for (const out of [r.stdout, r.stderr]) {
      assert.equal(out.length, Limits.execSyncStreamBytes + marker.length);
      assert.ok(out.subarray(out.length - marker.length).equals(marker), 'no truncation marker');
      assert.equal(out.subarray(0, 1024).every((b) => b === 0), true);
    }
    assert.equal(r.exitCode, 3);
  });

  it('ExecSync returns stdout and stderr apart, the exit code, and enforces the timeout', async () => {
    const id = await run('execer');
    const r = await rt().ExecSync({ containerId: id, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 7'], timeout: '10' });
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 7);
    // The container's process settings come from its bundle once, not per exec.
    const bundleSpec = path.join(fx.berthd.state, 'containers', id, 'bundle', 'config.json');
    const saved = fs.readFileSync(bundleSpec);
    fs.writeFileSync(bundleSpec, '{ not json');
    try {
      assert.equal((await rt().ExecSync({ containerId: id, cmd: ['echo', 'again'], timeout: '10' })).stdout.toString(), 'again\n');
    } finally {
      fs.writeFileSync(bundleSpec, saved);
    }
    const t0 = Date.now();
    await assert.rejects(
      rt().ExecSync({ containerId: id, cmd: ['sh', '-c', 'sleep 60 & sleep 60'], timeout: '1' }),
      (e) => code(e) === 4 && /did not finish within|timed out/i.test((e as grpc.ServiceError).details),
    );
    assert.ok(Date.now() - t0 < 30000);
    const missing = await rt().ExecSync({ containerId: id, cmd: ['/bin/nonexistent'], timeout: '10' }).catch((e: unknown) => e);
    if ('exitCode' in (missing as object)) assert.notEqual((missing as { exitCode: number }).exitCode, 0);
    else assert.ok(code(missing) !== undefined);
  });

  it('merges env, user and working dir from the image and the request', async () => {
    const id = await run('merged', { envs: [{ key: 'FOO', value: Buffer.from('request') }] }, fx.image2);
    const r = await rt().ExecSync({ containerId: id, cmd: ['sh', '-c', 'echo $FOO $BAR; id -u; id -G; pwd'], timeout: '10' });
    const [env, uid, groups, cwd] = r.stdout.toString().trim().split('\n');
    assert.equal(env, 'request image');
    assert.equal(uid, '1000');
    assert.deepEqual(groups.split(' ').sort(), ['1000', '10', '2000'].sort());
    assert.equal(cwd, '/work');
    const st = await rt().ContainerStatus({ containerId: id, verbose: false });
    assert.deepEqual(
      { ...st.status?.user?.linux, supplementalGroups: [...(st.status?.user?.linux?.supplementalGroups ?? [])].sort() },
      { uid: '1000', gid: '1000', supplementalGroups: ['10', '1000', '2000'] },
    );
    const strict = await run('strict', {
      linux: { securityContext: { runAsUser: { value: '1000' }, supplementalGroups: ['1234'], supplementalGroupsPolicy: 'Strict' } },
    });
    const r3 = await rt().ExecSync({ containerId: strict, cmd: ['id', '-G'], timeout: '10' });
    assert.equal(r3.stdout.toString(), '1000 1234\n', 'Strict: no groups from the image');
    const status = await rt().Status({ verbose: false });
    assert.equal(status.features?.supplementalGroupsPolicy, true);
    const asUser = await run('asuser', { linux: { securityContext: { runAsUser: { value: '65534' }, runAsGroup: { value: '65534' } } } });
    const r2 = await rt().ExecSync({ containerId: asUser, cmd: ['sh', '-c', 'id -u; id -g'], timeout: '10' });
    assert.equal(r2.stdout.toString(), '65534\n65534\n');
  });

  it('applies readonly rootfs, bind mounts, capabilities, seccomp and no_new_privs', async () => {
    const hostDir = fs.mkdtempSync(path.join(fx.logDir, 'bind-'));
    fs.writeFileSync(path.join(hostDir, 'hello'), 'from host');
    const id = await run('secured', {
      mounts: [{ containerPath: '/data', hostPath: hostDir, readonly: true }],
      linux: {
        securityContext: {
          readonlyRootfs: true,
          noNewPrivs: true,
          seccomp: { profileType: 'RuntimeDefault' },
          capabilities: { dropCapabilities: ['NET_RAW'] },
        },
      },
    });
    const r = await rt().ExecSync({
      containerId: id,
      cmd: ['sh', '-c', 'cat /data/hello; echo; touch /x 2>/dev/null && echo rw || echo ro; touch /data/y 2>/dev/null && echo rw || echo ro; grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status; grep "Max open files" /proc/self/limits'],
      timeout: '10',
    });
    const out = r.stdout.toString();
    assert.match(out, /^from host\nro\nro\n/);
    assert.match(out, /NoNewPrivs:\s+1/);
    assert.match(out, /Seccomp:\s+2/);
    // runtime.default_rlimits (1024/524288), not berthd's own limit; without CAP_SYS_RESOURCE berthd's hard limit caps it.
    const own = probeHost();
    const hard = Math.min(524288, own.rlimitCeilings?.RLIMIT_NOFILE ?? 524288);
    const limits = new RegExp(`Max open files\\s+${Math.min(1024, hard)}\\s+${hard}\\s`);
    // The container's init, as `runc create` set it up. An exec'd process is
    // checked too, but runc 1.1 before 1.1.13 built with Go >= 1.19 (Debian's
    // 1.1.5) may hand it a soft limit raised to the hard one: its child's Go
    // runtime can cache the limit runc just set and raise it before the exec
    // (runc issue 4195), depending on which of the two runs first.
    const status = await rt().ContainerStatus({ containerId: id, verbose: true });
    const initPid = (JSON.parse(status.info.info) as { pid: number }).pid;
    assert.match(fs.readFileSync(`/proc/${initPid}/limits`, 'utf8'), limits);
    const execLine = /Max open files.*/.exec(out)?.[0] ?? '';
    if (!limits.test(`${execLine}\n`)) assert.match(execLine, new RegExp(`Max open files\\s+${hard}\\s+${hard}\\s`));
    const capEff = BigInt('0x' + (/CapEff:\s+([0-9a-f]+)/.exec(out) as RegExpExecArray)[1]);
    const CAP_NET_RAW = 13n;
    const CAP_SYS_ADMIN = 21n;
    const CAP_CHOWN = 0n;
    assert.equal((capEff >> CAP_NET_RAW) & 1n, 0n, 'NET_RAW dropped');
    assert.equal((capEff >> CAP_SYS_ADMIN) & 1n, 0n, 'SYS_ADMIN not in the default set');
    assert.equal((capEff >> CAP_CHOWN) & 1n, 1n, 'CHOWN in the default set');
  });

  it('puts the memory limit in the container cgroup, and UpdateContainerResources changes it', async () => {
    const limit = 64 * 1024 * 1024;
    const id = await run('limited', { linux: { resources: { memoryLimitInBytes: String(limit) } } });
    const read = async () =>
      (
        await rt().ExecSync({
          containerId: id,
          cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'],
          timeout: '10',
        })
      ).stdout
        .toString()
        .trim();
    assert.equal(await read(), String(limit));
    // Asked before the update too, so a reply kept from then would show the old limit.
    const before = await rt().ContainerStatus({ containerId: id, verbose: false });
    assert.equal(before.status?.resources?.linux?.memoryLimitInBytes, String(limit));
    await rt().UpdateContainerResources({ containerId: id, linux: { memoryLimitInBytes: String(2 * limit) } });
    assert.equal(await read(), String(2 * limit));
    const s = await rt().ContainerStatus({ containerId: id, verbose: false });
    assert.equal(s.status?.resources?.linux?.memoryLimitInBytes, String(2 * limit));
  });

  it('shares the host network namespace for a host-network pod', async () => {
    const id = await run('hostnet');
    const r = await rt().ExecSync({ containerId: id, cmd: ['readlink', '/proc/self/ns/net'], timeout: '10' });
    assert.equal(r.stdout.toString().trim(), fs.readlinkSync('/proc/self/ns/net'));
  });

  it('reports container and pod stats: cgroup CPU and memory, writable layer usage', async () => {
    const id = await run('stats', { command: ['sh', '-c', 'dd if=/dev/zero of=/big bs=1024 count=512 2>/dev/null; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 3600'] });
    const s = await waitFor('cpu used and file written', async () => {
      const r = await rt().ContainerStats({ containerId: id });
      const used = BigInt(r.stats?.writableLayer?.usedBytes?.value ?? '0');
      return used >= 512n * 1024n && BigInt(r.stats?.cpu?.usageCoreNanoSeconds?.value ?? '0') > 0n ? r.stats : undefined;
    });
    assert.equal(s?.attributes?.id, id);
    assert.ok(BigInt(s?.memory?.workingSetBytes?.value ?? '0') > 0n);
    assert.ok(BigInt(s?.writableLayer?.inodesUsed?.value ?? '0') >= 1n);
    assert.ok(s?.writableLayer?.fsId?.mountpoint);
    const again = await rt().ContainerStats({ containerId: id });
    assert.ok(again.stats?.cpu?.usageNanoCores, 'a second sample gives a CPU rate');
    const list = await rt().ListContainerStats({ filter: { podSandboxId: podId } });
    assert.ok(list.stats.some((x) => x.attributes?.id === id));
    const pod = await rt().PodSandboxStats({ podSandboxId: podId });
    assert.ok(BigInt(pod.stats?.linux?.memory?.workingSetBytes?.value ?? '0') > 0n);
    assert.ok(pod.stats?.linux?.containers.some((x) => x.attributes?.id === id));
    const pods = await rt().ListPodSandboxStats({});
    assert.ok(pods.stats.some((x) => x.attributes?.id === podId));
  });

  it('streams container events (GetContainerEvents) in lifecycle order with pod and container statuses', async () => {
    const stream = fx.berthd.cri.containerEvents();
    const seen: Array<{ type: string; id: string; pod?: string; statuses: string[] }> = [];
    stream.on('data', (e: { containerEventType: string; containerId: string; podSandboxStatus: { id: string } | null; containersStatuses: Array<{ id: string }> }) =>
      seen.push({ type: e.containerEventType, id: e.containerId, pod: e.podSandboxStatus?.id, statuses: e.containersStatuses.map((c) => c.id) }),
    );
    const ended = new Promise<void>((r) => stream.on('error', () => r()).on('end', () => r()));
    await new Promise((r) => setTimeout(r, 200)); // the stream is open server-side
    const id = await run('evented', { command: ['sh', '-c', 'sleep 0.3'] });
    await exited(id);
    await rt().RemoveContainer({ containerId: id });
    const mine = await waitFor('four events', async () => {
      const m = seen.filter((e) => e.id === id);
      return m.length >= 4 ? m : undefined;
    });
    assert.deepEqual(
      mine.map((e) => e.type),
      ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT'],
    );
    for (const e of mine) {
      assert.equal(e.pod, podId);
      assert.equal(e.statuses[0], id);
    }
    stream.cancel();
    await ended;
  });

  it('streams pod sandbox events (container_id = the sandbox id) with container events, to several subscribers alike', async () => {
    type Ev = { containerEventType: string; containerId: string; podSandboxStatus: { id: string; state: string } | null; containersStatuses: Array<{ id: string; state: string }> };
    const subscribe = () => {
      const stream = fx.berthd.cri.containerEvents();
      const seen: Ev[] = [];
      stream.on('data', (e: Ev) => seen.push(e));
      const ended = new Promise<void>((r) => stream.on('error', () => r()).on('end', () => r()));
      return { stream, seen, ended };
    };
    const subs = [subscribe(), subscribe()];
    await new Promise((r) => setTimeout(r, 200)); // the streams are open server-side
    const cfg = sandboxConfig();
    const { podSandboxId: pod } = await rt().RunPodSandbox({ config: cfg });
    const { containerId: c } = await rt().CreateContainer({ podSandboxId: pod, config: containerConfig(fx.image, 'ev'), sandboxConfig: cfg });
    await rt().StartContainer({ containerId: c });
    await rt().StopPodSandbox({ podSandboxId: pod });
    await rt().RemovePodSandbox({ podSandboxId: pod });
    const sequence = (seen: Ev[]) =>
      seen.filter((e) => e.containerId === pod || e.containerId === c).map((e) => `${e.containerId === pod ? 'pod' : 'ctr'} ${e.containerEventType}`);
    const expected = [
      'pod CONTAINER_CREATED_EVENT',
      'pod CONTAINER_STARTED_EVENT',
      'ctr CONTAINER_CREATED_EVENT',
      'ctr CONTAINER_STARTED_EVENT',
      'ctr CONTAINER_STOPPED_EVENT',
      'pod CONTAINER_STOPPED_EVENT',
      'ctr CONTAINER_DELETED_EVENT',
      'pod CONTAINER_DELETED_EVENT',
    ];
    await waitFor('all events', async () => (subs.every((s) => sequence(s.seen).length >= expected.length) ? true : undefined));
    for (const s of subs) assert.deepEqual(sequence(s.seen), expected);
    const podEvents = subs[0].seen.filter((e) => e.containerId === pod);
    for (const e of podEvents) assert.equal(e.podSandboxStatus?.id, pod);
    assert.equal(podEvents[1].podSandboxStatus?.state, 'SANDBOX_READY');
    assert.equal(podEvents[2].podSandboxStatus?.state, 'SANDBOX_NOTREADY');
    // The pod's STOPPED event lists its (now exited) container, as the evented PLEG expects.
    assert.deepEqual(podEvents[2].containersStatuses.map((x) => [x.id, x.state]), [[c, 'CONTAINER_EXITED']]);
    assert.deepEqual(podEvents[3].containersStatuses, [], 'deleted with its containers');
    for (const s of subs) {
      s.stream.cancel();
      await s.ended;
    }
  });
});
