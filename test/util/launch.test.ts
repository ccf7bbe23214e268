// launch(): every case runs through berth-launch and through child_process,
// which must give the same result (berthd uses the first, tests and worker
// threads the second); and mount(2)/umount(2) through berth-launch.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findHelper } from '../../src/runtime/handlers';
import { execSupervisorPath } from '../../src/runtime/exec_supervisor';
import { launch, launcherInUse, launcherPid, launchSupervisor, mountSyscall, umountSyscall, useLauncher } from '../../src/util/launch';
import { isMountPoint } from '../../src/snapshotter/mount';

const LAUNCHER = findHelper('berth-launch', 'BERTH_LAUNCH');

for (const via of ['berth-launch', 'child_process'] as const) {
  describe(`launch through ${via}`, () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-launch-'));
      useLauncher(via === 'berth-launch' ? LAUNCHER : undefined);
      assert.equal(launcherInUse(), via === 'berth-launch');
    });
    afterEach(() => {
      useLauncher(undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('gives the exit status, stdout and stderr, with the environment and cwd asked for', async () => {
      const r = await launch('/bin/sh', ['-c', 'echo "$GREETING $(pwd)"; echo oops >&2; exit 3'], { env: { GREETING: 'hi' }, cwd: dir });
      assert.equal(r.code, 3);
      assert.equal(r.signal, null);
      assert.equal(r.timedOut, false);
      assert.equal(r.stdout.toString(), `hi ${fs.realpathSync(dir)}\n`);
      assert.equal(r.stderr.toString(), 'oops\n');
    });

    it('looks a bare name up in the PATH of the environment given', async () => {
      const r = await launch('sh', ['-c', 'echo found'], { env: { PATH: '/usr/bin:/bin' } });
      assert.equal(r.stdout.toString(), 'found\n');
    });

    it('writes the input to stdin and closes it; without input stdin is empty', async () => {
      const big = 'x'.repeat(300_000);
      const r = await launch('/bin/sh', ['-c', 'wc -c'], { input: big });
      assert.equal(r.stdout.toString().trim(), String(big.length));
      const empty = await launch('/bin/sh', ['-c', 'wc -c']);
      assert.equal(empty.stdout.toString().trim(), '0');
    });

    it('reports a child killed by a signal', async () => {
      const r = await launch('/bin/sh', ['-c', 'kill -TERM $$']);
      assert.equal(r.code, null);
      assert.equal(r.signal, 'SIGTERM');
    });

    it('kills a child that outlives its timeout with the signal asked for', async () => {
      const r = await launch('/bin/sleep', ['10'], { timeoutMs: 100, killSignal: 'SIGKILL' });
      assert.equal(r.timedOut, true);
      assert.equal(r.signal, 'SIGKILL');
    });

    it('keeps only the first bytes of each stream and still drains the rest', async () => {
      const r = await launch('/bin/sh', ['-c', 'head -c 1000000 /dev/zero; head -c 500 /dev/zero >&2'], { stdoutCap: 10, stderrCap: 0 });
      assert.equal(r.code, 0);
      assert.equal(r.stdout.length, 10);
      assert.equal(r.stderr.length, 0);
    });

    it('returns what the child wrote on fd 3 (readyFd)', async () => {
      const r = await launch('/bin/sh', ['-c', 'echo "OK 42" >&3'], { readyFd: true });
      assert.equal(r.ready.toString(), 'OK 42\n');
    });

    it('starts the child in a session of its own only when detached', async () => {
      const sidAndPid = 'echo "$(cut -d" " -f6 /proc/$$/stat) $$"';
      const [sid, pid] = (await launch('/bin/sh', ['-c', sidAndPid], { detached: true })).stdout.toString().trim().split(' ');
      assert.equal(sid, pid);
      const [sid2, pid2] = (await launch('/bin/sh', ['-c', sidAndPid])).stdout.toString().trim().split(' ');
      assert.notEqual(sid2, pid2);
    });

    it('waits until the pipes are closed, as child_process does', async () => {
      const r = await launch('/bin/sh', ['-c', '(sleep 0.2; echo late) & echo early']);
      assert.equal(r.stdout.toString(), 'early\nlate\n');
    });

    it('rejects as child_process does when the program cannot be started', async () => {
      await assert.rejects(launch(path.join(dir, 'missing'), ['x']), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'ENOENT');
        assert.equal(err.message, `spawn ${path.join(dir, 'missing')} ENOENT`);
        return true;
      });
      fs.writeFileSync(path.join(dir, 'not-executable'), '#!/bin/sh\n', { mode: 0o644 });
      await assert.rejects(launch(path.join(dir, 'not-executable'), []), { code: 'EACCES' });
    });
  });
}

describe('berth-launch itself', () => {
  before(() => useLauncher(LAUNCHER));
  after(() => useLauncher(undefined));

  it('is not used when the binary given is missing or not executable', () => {
    useLauncher('/nonexistent/berth-launch');
    assert.equal(launcherInUse(), false);
    useLauncher(__filename);
    assert.equal(launcherInUse(), false);
    useLauncher(LAUNCHER);
    assert.equal(launcherInUse(), true);
  });

  it('fails the requests out when it dies, and a new one serves the next', async () => {
    const running = launch('/bin/sleep', ['10']);
    const pid = launcherPid();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await assert.rejects(running, /berth-launch exited/);
    const r = await launch('/bin/sh', ['-c', 'echo again']);
    assert.equal(r.stdout.toString(), 'again\n');
    assert.notEqual(launcherPid(), pid);
  });

  it('starts an exec supervisor as its child, hands over its sockets and reports its exit', async () => {
    const sup = await launchSupervisor(execSupervisorPath(), true);
    assert.ok(sup.stdin);
    const ppid = Number(fs.readFileSync(`/proc/${sup.pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
    assert.equal(ppid, launcherPid());
    // libuv reads a handed-over socket until EAGAIN: a blocking one would stop berthd's event loop.
    for (const sock of [sup.stdin, sup.stdout, sup.stderr, sup.control]) {
      const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
      assert.ok(fd !== undefined && fd >= 0);
      const flags = Number.parseInt(/^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0', 8);
      assert.ok(flags & fs.constants.O_NONBLOCK, `fd ${fd} is blocking`);
    }
    sup.control.end(); // EOF before a RUN frame: it leaves quietly
    assert.deepEqual(await sup.outcome, { code: 0, signal: null });
    const noStdin = await launchSupervisor(execSupervisorPath(), false);
    assert.equal(noStdin.stdin, null);
    process.kill(noStdin.pid, 'SIGKILL');
    assert.deepEqual(await noStdin.outcome, { code: null, signal: 'SIGKILL' });
  });

  it('gives a supervisor a sealed, read-only copy of the runtime asked for, re-made when the file changes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-launch-copy-'));
    const started: number[] = [];
    /** The supervisor's fd 4 and command line, once started with a copy of `runtime`. */
    const supervisorWith = async (runtime: string): Promise<{ cmdline: string; link?: string; ino?: number; bytes?: Buffer; fd4?: string }> => {
      const sup = await launchSupervisor(execSupervisorPath(), false, runtime);
      started.push(sup.pid);
      const fd4 = `/proc/${sup.pid}/fd/4`;
      const cmdline = fs.readFileSync(`/proc/${sup.pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      const link = ((): string | undefined => {
        try {
          return fs.readlinkSync(fd4);
        } catch {
          return undefined;
        }
      })();
      // Without a copy its fd 4 may briefly be something of its own (the /proc/self/fd it reads at start).
      if (!link?.startsWith('/memfd:')) return { cmdline };
      return { cmdline, link, ino: fs.statSync(fd4).ino, bytes: fs.readFileSync(fd4), fd4 };
    };
    try {
      const runtime = path.join(dir, 'runtime');
      fs.copyFileSync('/bin/true', runtime);
      const first = await supervisorWith(runtime);
      assert.match(first.cmdline, /--control-fd 3 --runtime-fd 4$/);
      assert.match(first.link ?? '', /^\/memfd:berth-runtime/);
      assert.deepEqual(first.bytes, fs.readFileSync(runtime));
      // Sealed: no write, no truncation, whoever opens it.
      const rw = fs.openSync(first.fd4 as string, 'r+');
      try {
        assert.throws(() => fs.writeSync(rw, 'x'), { code: 'EPERM' });
        assert.throws(() => fs.ftruncateSync(rw, 0), { code: 'EPERM' });
      } finally {
        fs.closeSync(rw);
      }
      assert.equal((await supervisorWith(runtime)).ino, first.ino, 'made once');
      fs.appendFileSync(runtime, 'changed');
      const changed = await supervisorWith(runtime);
      assert.notEqual(changed.ino, first.ino);
      assert.deepEqual(changed.bytes, fs.readFileSync(runtime));
      for (const none of ['', 'relative/runtime', path.join(dir, 'missing'), dir]) {
        const plain = await supervisorWith(none);
        assert.match(plain.cmdline, /--control-fd 3$/, none);
        assert.equal(plain.link, undefined);
      }
    } finally {
      for (const pid of started) process.kill(pid, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives a `run` child a sealed copy of the runtime asked for as its next fd, named after its arguments', async () => {
    const script = 'echo "$@"; readlink /proc/self/fd/$2';
    const withCopy = await launch('/bin/sh', ['-c', script, 'sh'], { runtimeCopy: '/bin/true', readyFd: true });
    assert.match(withCopy.stdout.toString(), /^--runtime-fd 4\n\/memfd:berth-runtime/);
    const plain = await launch('/bin/sh', ['-c', 'echo "[$@]"', 'sh'], { runtimeCopy: 'not/absolute' });
    assert.equal(plain.stdout.toString(), '[]\n');
  });

  it('fails a supervisor it cannot start, and reports its supervisors lost when it dies', async () => {
    await assert.rejects(launchSupervisor(path.join(os.tmpdir(), 'no-such-berth-exec'), false), /cannot start berth-exec: No such file/);
    const sup = await launchSupervisor(execSupervisorPath(), false);
    const pid = launcherPid();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    assert.match((await sup.outcome).lost ?? '', /berth-launch exited/);
  });
});

describe('mount(2) and umount(2) through berth-launch', () => {
  let dir: string;
  before(() => useLauncher(LAUNCHER));
  after(() => useLauncher(undefined));
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-launch-mnt-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('mounts with the flags and data given, relative to cwd, and unmounts', async () => {
    fs.mkdirSync(path.join(dir, 'target'));
    await mountSyscall('tmpfs', 'tmpfs', 1 /* MS_RDONLY */, 'size=1m', 'target', dir);
    try {
      assert.ok(await isMountPoint(path.join(dir, 'target')));
      assert.throws(() => fs.writeFileSync(path.join(dir, 'target', 'f'), 'x'), { code: 'EROFS' });
    } finally {
      await umountSyscall(path.join(dir, 'target'));
    }
    assert.equal(await isMountPoint(path.join(dir, 'target')), false);
  });

  it('rejects with the errno', async () => {
    await assert.rejects(mountSyscall('none', 'no-such-fs-type', 0, '', dir, '/'), { code: 'ENODEV' });
    await assert.rejects(umountSyscall(dir), { code: 'EINVAL' });
  });
});
