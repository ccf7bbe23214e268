// Integration tests: specs from the builder run by the real runc, checked from
// INSIDE the container through OciRuntime.exec. Needs root, runc and
// busybox-static. BERTH_TEST_RUNTIMES=runc,crun runs them per handler.
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { findHelper, resolveBinary } from '../../src/runtime/handlers';
import { useLauncher } from '../../src/util/launch';
import { SupervisorPool } from '../../src/runtime/exec_supervisor';
import { OciRuntime } from '../../src/runtime/oci_runtime';
import { buildContainerSpec, execProcess, type ContainerSpecInput } from '../../src/runtime/spec/builder';
import { capabilitiesFromMask, probeHost, type HostInfo } from '../../src/runtime/spec/host_info';
import type { OciSpec } from '../../src/runtime/spec/oci_types';
import { containerConfig, makeBusyboxRootfs, mount, podConfig, sandboxInfo } from './fixtures';

const runtimes = (process.env.BERTH_TEST_RUNTIMES ?? 'runc').split(',').filter((r) => r !== '');

async function rejectsWithKind(p: Promise<unknown>, kind: string, text?: RegExp): Promise<BerthError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (text) assert.match(err.message, text);
    return err;
  }
  assert.fail(`expected a ${kind} error`);
}

for (const runtimeName of runtimes) {
  describe(`runtime/oci_runtime with ${runtimeName} (integration)`, function () {
    this.timeout(30000);
    const binary = resolveBinary(runtimeName);
    let tmp: string;
    let rootfs: string;
    let runtime: OciRuntime;
    let host: HostInfo;
    let pinner: ChildProcess | undefined;
    let cgroupParent: string;
    const created: string[] = [];
    const supervisors = new SupervisorPool();

    before(async function () {
      if (!binary || process.getuid?.() !== 0) this.skip();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-oci-'));
      rootfs = makeBusyboxRootfs(path.join(tmp, 'rootfs'));
      fs.writeFileSync(path.join(tmp, 'hosts'), '127.0.0.1 localhost\n');
      fs.mkdirSync(path.join(tmp, 'shm'));
      fs.mkdirSync(path.join(tmp, 'data'));
      fs.writeFileSync(path.join(tmp, 'data', 'hello.txt'), 'hello from the host\n');
      runtime = new OciRuntime({ name: runtimeName, binary: binary as string, root: path.join(tmp, 'state'), tmpDir: tmp }, supervisors);
      host = probeHost();
      cgroupParent = `/berth-test-${process.pid}`;
      // Pod namespaces pinned by a sleeping process, as the sandbox pins them.
      pinner = spawn('unshare', ['--net', '--ipc', '--uts', 'sleep', '600'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 200));
    });

    after(async () => {
      supervisors.close();
      for (const id of created) {
        try {
          await runtime.delete(id, true);
        } catch {
          // already gone
        }
      }
      pinner?.kill('SIGKILL');
      // runc removes each container's cgroup; the shared parent is ours to remove.
      for (const ctl of fs.existsSync('/sys/fs/cgroup') ? fs.readdirSync('/sys/fs/cgroup') : []) {
        try {
          fs.rmdirSync(path.join('/sys/fs/cgroup', ctl, cgroupParent));
        } catch {
          // not created in this controller
        }
      }
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    });

    function input(id: string, p: Partial<ContainerSpecInput>): ContainerSpecInput {
      const ns = (t: string) => ({ kind: 'pinned' as const, path: `/proc/${pinner?.pid}/ns/${t}` });
      return {
        containerId: id,
        config: containerConfig({ command: ['sleep', '3600'] }),
        sandboxConfig: podConfig(),
        image: { Env: ['PATH=/bin', 'FROM_IMAGE=1', 'OVERRIDE=image'] },
        imageName: 'busybox:test',
        rootfsPath: rootfs,
        sandbox: sandboxInfo({
          network: ns('net'),
          ipc: ns('ipc'),
          uts: ns('uts'),
          hostsPath: path.join(tmp, 'hosts'),
          shmPath: path.join(tmp, 'shm'),
          cgroupParent,
        }),
        host,
        ...p,
      };
    }

    /** Writes the bundle, runs `create` (as the shim would) and `start`. */
    async function run(id: string, p: Partial<ContainerSpecInput>): Promise<OciSpec> {
      const spec = buildContainerSpec(input(id, p));
      const bundle = path.join(tmp, 'bundles', id);
      await OciRuntime.writeBundle(bundle, spec);
      const log = path.join(tmp, `${id}.create.log`);
      const res = spawnSync(
        binary as string,
        ['--root', path.join(tmp, 'state'), '--log', log, '--log-format', 'json', 'create', '--bundle', bundle, id],
        { stdio: 'ignore', timeout: 20000 },
      );
      created.push(id);
      assert.equal(res.status, 0, `create failed: ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
      await runtime.start(id);
      return spec;
    }

    const sh = async (id: string, spec: OciSpec, script: string, timeoutMs = 10000) =>
      runtime.exec(id, execProcess(spec.process, ['sh', '-c', script]), { timeoutMs });

    describe('a root container with RuntimeDefault seccomp', () => {
      const id = `def-${process.pid}`;
      let spec: OciSpec;
      before(async () => {
        spec = await run(id, {
          config: containerConfig(
            { command: ['sleep', '3600'], envs: [{ key: 'OVERRIDE', value: Buffer.from('cri') }] },
            { seccomp: { profileType: 'RuntimeDefault', localhostRef: '' }, noNewPrivs: true },
            { memoryLimitInBytes: String(64 * 1024 * 1024), oomScoreAdj: '-997' },
          ),
        });
      });

      it('writes config.json atomically (no temp files left)', () => {
        assert.deepEqual(fs.readdirSync(path.join(tmp, 'bundles', id)), ['config.json']);
      });

      it('has the default capability set, seccomp filter mode and no_new_privs', async () => {
        const r = await runtime.exec(id, execProcess(spec.process, ['cat', '/proc/self/status']));
        const status = r.stdout.toString();
        assert.match(status, /^CapEff:\s+00000000a80425fb$/m);
        assert.match(status, /^CapBnd:\s+00000000a80425fb$/m);
        assert.match(status, /^Seccomp:\s+2$/m);
        assert.match(status, /^NoNewPrivs:\s+1$/m);
      });

      it('seccomp blocks unshare(CLONE_NEWUSER), which needs no capability', async () => {
        const r = await sh(id, spec, 'unshare -U true 2>&1; echo rc=$?');
        assert.match(r.stdout.toString(), /rc=[1-9]/);
        assert.match(r.stdout.toString(), /not permitted/i);
      });

      it('masks the default masked paths (e.g. /proc/kcore) and makes /proc/sys read-only', async () => {
        // Masked files are /dev/null binds; check those this kernel has (kcore is absent on some VMs).
        const present = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug'].filter((f) => fs.existsSync(f));
        assert.ok(present.length > 0);
        const script = present.map((f) => `wc -c < ${f}`).join('; ') + '; echo 1 > /proc/sys/kernel/domainname 2>/dev/null; echo rc=$?';
        const lines = (await sh(id, spec, script)).stdout.toString().trim().split('\n');
        assert.deepEqual(lines.slice(0, present.length), present.map(() => '0'));
        assert.match(lines[present.length], /rc=[1-9]/);
      });

      it('joins the pod UTS namespace with the pod hostname', async () => {
        const r = await runtime.exec(id, execProcess(spec.process, ['hostname']));
        assert.equal(r.stdout.toString().trim(), 'podhost');
      });

      it('applies the memory limit in the container cgroup; update changes it', async () => {
        const file =
          host.cgroupVersion === 1
            ? path.join('/sys/fs/cgroup/memory', cgroupParent, id, 'memory.limit_in_bytes')
            : path.join('/sys/fs/cgroup', cgroupParent, id, 'memory.max');
        assert.equal(fs.readFileSync(file, 'utf8').trim(), String(64 * 1024 * 1024));
        await runtime.update(id, { memory: { limit: 96 * 1024 * 1024, swap: 96 * 1024 * 1024 } });
        assert.equal(fs.readFileSync(file, 'utf8').trim(), String(96 * 1024 * 1024));
      });

      it('clamps oom_score_adj to what the host allows', async () => {
        const r = await runtime.exec(id, execProcess(spec.process, ['cat', '/proc/1/oom_score_adj']));
        assert.equal(Number(r.stdout.toString().trim()), Math.max(-997, host.minOomScoreAdj));
      });

      it('keeps the scratch files of its calls in its tmpDir, and removes them; a plain command needs none', async () => {
        const scratch = path.join(tmp, 'scratch');
        fs.mkdirSync(scratch, { recursive: true });
        const seen: string[] = [];
        const watcher = fs.watch(scratch, (_event, file) => file && seen.push(file));
        try {
          const withScratch = new OciRuntime({ name: runtimeName, binary: binary as string, root: path.join(tmp, 'state'), tmpDir: scratch }, supervisors);
          await withScratch.state(id);
          await withScratch.kill(id, 0);
          await new Promise((r) => setTimeout(r, 100));
          assert.equal(seen.length, 0, `state and kill log to stderr: ${seen.join(' ')}`);
          await withScratch.update(id, {});
          await withScratch.exec(id, execProcess(spec.process, ['true']));
          await new Promise((r) => setTimeout(r, 100));
        } finally {
          watcher.close();
        }
        // The exec supervisor's own scratch directory, and update's (its resources file).
        assert.ok(seen.some((f) => f.startsWith('exec-')), seen.join(' '));
        assert.ok(seen.some((f) => f.startsWith(`${runtimeName}-`)), seen.join(' '));
        assert.deepEqual(fs.readdirSync(scratch), []);
      });

      it('execs runc from berth-launch\'s sealed copy, so runc init skips its own clone; by path otherwise', async function () {
        if (runtimeName !== 'runc') this.skip();
        const version = execFileSync(binary as string, ['--version'], { encoding: 'utf8' }).split('\n')[0];
        // runc 1.1's runc init, unless it already runs from a sealed memfd, clones its binary first: a
        // runc.XXXXXX file in the container's state directory (a bind mount target), gone at once.
        const clones = async (handlerVersion: string): Promise<string[]> => {
          const seen: string[] = [];
          const watcher = fs.watch(path.join(tmp, 'state', id), (_event, file) => file?.startsWith('runc.') && seen.push(file));
          const pool = new SupervisorPool();
          try {
            const oci = new OciRuntime(
              { name: runtimeName, binary: binary as string, root: path.join(tmp, 'state'), tmpDir: tmp, version: handlerVersion },
              pool,
            );
            for (let i = 0; i < 2; i++) assert.equal((await oci.exec(id, execProcess(spec.process, ['echo', 'hi']))).stdout.toString(), 'hi\n');
            // Once runc is started the supervisor lets go of the copy (held, a replaced runc's would stay in memory).
            const long = await oci.startExec(id, execProcess(spec.process, ['sleep', '30']), { tty: false, stdin: false });
            assert.ok(((await long.pid) ?? 0) > 0);
            const held = fs.readdirSync(`/proc/${long.supervisor.pid}/fd`).filter((fd) => {
              try {
                return fs.readlinkSync(`/proc/${long.supervisor.pid}/fd/${fd}`).startsWith('/memfd:');
              } catch {
                return false;
              }
            });
            long.kill();
            assert.equal(await long.exited, 137);
            assert.deepEqual(held, []);
            await new Promise((r) => setTimeout(r, 100));
          } finally {
            watcher.close();
            pool.close();
          }
          return seen;
        };
        useLauncher(findHelper('berth-launch', 'BERTH_LAUNCH'));
        try {
          assert.deepEqual(await clones(version), []);
          assert.notDeepEqual(await clones('crun version 1.8'), [], 'another runtime is exec\'d by path');
        } finally {
          useLauncher(undefined);
        }
        assert.notDeepEqual(await clones(version), [], 'without berth-launch runc clones itself');
      });

      it('reports state, and NOT_FOUND for an unknown container', async () => {
        const st = await runtime.state(id);
        assert.equal(st.status, 'running');
        assert.equal(st.id, id);
        assert.ok(st.pid > 0);
        await rejectsWithKind(runtime.state('no-such-container'), 'NOT_FOUND', /no-such-container/);
        // runc logs its error (JSON on stderr) and prints it again as text: told once.
        await assert.rejects(runtime.state('no-such-container'), (err: Error) => err.message.split('does not exist').length === 2);
      });

      it('returns the exit code and keeps stdout and stderr apart', async () => {
        const r = await sh(id, spec, 'echo out; echo err >&2; exit 3');
        assert.equal(r.exitCode, 3);
        assert.equal(r.stdout.toString(), 'out\n');
        assert.equal(r.stderr.toString(), 'err\n');
      });

      it('feeds stdin when given', async () => {
        const r = await runtime.exec(id, execProcess(spec.process, ['cat']), { stdin: 'piped in' });
        assert.equal(r.stdout.toString(), 'piped in');
      });

      it('caps output at 16 MiB and still lets the process finish', async () => {
        const r = await sh(id, spec, 'dd if=/dev/zero bs=1048576 count=20 2>/dev/null; echo done >&2');
        assert.equal(r.exitCode, 0);
        assert.equal(r.stdout.length, 16 * 1024 * 1024);
        assert.equal(r.stdoutTruncated, true);
        assert.equal(r.stderr.toString(), 'done\n');
      });

      it('does not wait for a background child holding the pipes once the process exits', async () => {
        const t0 = Date.now();
        const r = await sh(id, spec, 'sleep 30 & echo quick');
        assert.equal(r.exitCode, 0);
        assert.equal(r.stdout.toString(), 'quick\n');
        assert.ok(Date.now() - t0 < 15000);
      });

      it('kills the process at the timeout and reports DEADLINE_EXCEEDED, background child or not', async () => {
        const t0 = Date.now();
        await rejectsWithKind(sh(id, spec, 'sleep 40 & sleep 50', 1000), 'DEADLINE_EXCEEDED', /1000 ms/);
        assert.ok(Date.now() - t0 < 15000);
        // The exec'd shell is gone: only the background sleep 40 (and init) remain.
        const ps = await sh(id, spec, 'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\\0" " "; echo; done');
        assert.doesNotMatch(ps.stdout.toString(), /sleep 50/);
      });

      it('reports a runtime failure with its message, not as an exit code', async () => {
        await rejectsWithKind(
          runtime.exec(id, execProcess(spec.process, ['/no/such/binary'])),
          'INTERNAL',
          /no such file|not found|exec/i,
        );
      });

      it('kill stops the container; exec then fails with a precondition/not-found error', async () => {
        await runtime.kill(id, 'SIGKILL');
        for (let i = 0; i < 50 && (await runtime.state(id)).status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 100));
        assert.equal((await runtime.state(id)).status, 'stopped');
        const err = await runtime.exec(id, execProcess(spec.process, ['true'])).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof BerthError && (err.kind === 'FAILED_PRECONDITION' || err.kind === 'NOT_FOUND'), String(err));
        await runtime.delete(id);
        await rejectsWithKind(runtime.state(id), 'NOT_FOUND');
      });
    });

    describe('a privileged container', () => {
      const id = `priv-${process.pid}`;
      let spec: OciSpec;
      before(async () => {
        spec = await run(id, {
          sandboxConfig: podConfig(true),
          config: containerConfig(
            { command: ['sleep', '3600'] },
            { privileged: true, seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } },
          ),
        });
      });

      it('gets every capability berth holds, no seccomp, writable /sys, host devices', async () => {
        const r = await sh(id, spec, 'cat /proc/self/status; ls /dev; wc -c < /proc/keys');
        const out = r.stdout.toString();
        const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(out)?.[1] ?? '';
        assert.deepEqual(capabilitiesFromMask(capEff), host.capabilities);
        assert.match(out, /^Seccomp:\s+0$/m);
        const mounts = (await runtime.exec(id, execProcess(spec.process, ['cat', '/proc/mounts']))).stdout.toString();
        assert.match(mounts, /^sysfs \/sys sysfs rw/m);
        // Nothing masked: /proc/keys has the host's content.
        assert.notEqual(out.trim().split('\n').pop(), '0');
        assert.ok(spec.linux.devices && spec.linux.devices.length > 0);
      });
    });

    describe('a non-root, read-only, unconfined container with a bind mount', () => {
      const id = `usr-${process.pid}`;
      let spec: OciSpec;
      before(async () => {
        spec = await run(id, {
          image: { Env: ['PATH=/bin', 'FROM_IMAGE=1', 'OVERRIDE=image'], User: 'app', WorkingDir: '/home/app' },
          config: containerConfig(
            {
              command: ['sleep', '3600'],
              envs: [{ key: 'OVERRIDE', value: Buffer.from('cri') }],
              mounts: [mount({ containerPath: '/data', hostPath: path.join(tmp, 'data'), readonly: true })],
            },
            { readonlyRootfs: true, seccomp: { profileType: 'Unconfined', localhostRef: '' }, supplementalGroups: ['4000'] },
          ),
        });
      });

      it('runs as the image user with its groups, in the image working dir', async () => {
        const r = await sh(id, spec, 'id -u; id -g; id -G; pwd');
        const [uid, gid, groups, cwd] = r.stdout.toString().trim().split('\n');
        assert.equal(uid, '1000');
        assert.equal(gid, '1000');
        assert.deepEqual(groups.split(' ').sort(), ['1000', '2000', '4000']);
        assert.equal(cwd, '/home/app');
      });

      it('merges env: image, CRI override, HOSTNAME', async () => {
        const env = (await runtime.exec(id, execProcess(spec.process, ['env']))).stdout.toString().split('\n');
        assert.ok(env.includes('FROM_IMAGE=1'));
        assert.ok(env.includes('OVERRIDE=cri'));
        assert.ok(env.includes('HOSTNAME=podhost'));
        assert.ok(env.includes('PATH=/bin'));
      });

      it('without seccomp, unshare(CLONE_NEWUSER) works', async () => {
        const r = await sh(id, spec, 'unshare -U true 2>&1; echo rc=$?');
        assert.match(r.stdout.toString(), /rc=0/);
      });

      it('has no seccomp filter and no capabilities as non-root', async () => {
        const status = (await runtime.exec(id, execProcess(spec.process, ['cat', '/proc/self/status']))).stdout.toString();
        assert.match(status, /^Seccomp:\s+0$/m);
        assert.match(status, /^NoNewPrivs:\s+0$/m);
        assert.match(status, /^CapEff:\s+0000000000000000$/m);
      });

      it('has a read-only rootfs and a read-only bind mount with host content', async () => {
        const r = await sh(id, spec, 'touch /probe 2>/dev/null; echo root=$?; cat /data/hello.txt; touch /data/x 2>/dev/null; echo data=$?');
        const out = r.stdout.toString();
        assert.match(out, /root=[1-9]/);
        assert.match(out, /hello from the host/);
        assert.match(out, /data=[1-9]/);
      });

      it('binds the pod hosts file and shm directory', async () => {
        fs.writeFileSync(path.join(tmp, 'shm', 'marker'), 'x');
        const r = await sh(id, spec, 'cat /etc/hosts; ls /dev/shm');
        assert.match(r.stdout.toString(), /127\.0\.0\.1 localhost/);
        assert.match(r.stdout.toString(), /marker/);
      });
    });
  });
}
