// berth-shim with real runc and a busybox rootfs: logging, exit records,
// log reopen, attach, tty, survival of its parent, reaping.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { ShimClient, SHIM_FILES, type ShimSpawnOptions } from '../../src/runtime/shim_client';
import {
  buildShim,
  childrenOf,
  ContainerDirs,
  isShimProcess,
  makeBundle,
  makeRootfs,
  parseCriLog,
  procState,
  REPO,
  tempRoot,
  waitFor,
  type BundleOptions,
} from './fixtures';

describe('berth-shim', function () {
  let root: string;
  let rootfs: string;
  let shimBinary: string;
  const live: ContainerDirs[] = [];

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    shimBinary = buildShim();
    root = tempRoot('berth-shim-test-');
    rootfs = makeRootfs(root);
  });

  afterEach(function () {
    for (const c of live.splice(0)) c.cleanup();
  });

  after(function () {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  function container(bundle: BundleOptions): ContainerDirs {
    const c = ContainerDirs.create(root);
    live.push(c);
    c.bundle = makeBundle(c.dir, rootfs, bundle);
    return c;
  }

  function spawnOpts(c: ContainerDirs, extra: Partial<ShimSpawnOptions> = {}): ShimSpawnOptions {
    return {
      id: c.id,
      bundle: c.bundle,
      stateDir: c.stateDir,
      runtimeRoot: c.runtimeRoot,
      runtime: '/usr/sbin/runc',
      logPath: c.logPath,
      shimBinary,
      ...extra,
    };
  }

  function readLog(c: ContainerDirs, file = c.logPath): ReturnType<typeof parseCriLog> {
    return parseCriLog(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  }

  it('logs stdout and stderr in CRI format and records the exit code durably', async function () {
    const c = container({ args: ['sh', '-c', 'echo out1; echo err1 >&2; printf "crlf\\r\\n"; exit 3'] });
    const before = BigInt(Date.now()) * 1_000_000n;
    const shim = await ShimClient.spawn(spawnOpts(c));
    assert.ok(shim.containerPid > 0);
    assert.equal(JSON.parse(c.runc('state', c.id)).status, 'created');
    const state = await shim.state();
    assert.equal(state.status, 'running');
    assert.equal(state.pid, shim.containerPid);

    c.runc('start', c.id);
    const exit = await shim.waitExit();
    assert.equal(exit.exitCode, 3);
    assert.equal(exit.signal, 0);
    assert.equal(exit.oomKilled, false);
    assert.equal(exit.pid, shim.containerPid);
    assert.match(exit.exitedAtNs, /^\d{19}$/);
    const at = BigInt(exit.exitedAtNs);
    assert.ok(at >= before && at <= BigInt(Date.now()) * 1_000_000n, `exitedAtNs ${exit.exitedAtNs}`);

    assert.deepEqual(await shim.readExitFile(), exit);
    const after = await shim.state();
    assert.equal(after.status, 'exited');
    assert.deepEqual(after.exit, exit);

    // stdout and stderr are separate pipes: their relative order is not fixed.
    const recs = readLog(c);
    assert.ok(recs.every((r) => r.tag === 'F'));
    assert.equal(recs.length, 3);
    assert.ok(recs.find((r) => r.stream === 'stderr' && r.content === 'err1'));
    assert.ok(recs.find((r) => r.stream === 'stdout' && r.content === 'out1'));
    assert.ok(recs.find((r) => r.stream === 'stdout' && r.content === 'crlf'));
    // The shim exits after recording; its socket is gone.
    await waitFor('shim exit', () => !fs.existsSync(path.join(c.stateDir, SHIM_FILES.controlSocket)));
    assert.equal(await shim.isAlive(), false);
  });

  it('names its own pid in the ready line, so the client needs no pid file', async function () {
    const c = container({ args: ['true'] });
    let ready = '';
    const child = spawn(
      shimBinary,
      ['--id', c.id, '--bundle', c.bundle, '--state-dir', c.stateDir, '--runtime-root', c.runtimeRoot, '--runtime', '/usr/sbin/runc', '--ready-fd', '3'],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] },
    );
    const pipe = child.stdio[3] as net.Socket;
    pipe.on('data', (d: Buffer) => (ready += d.toString()));
    await new Promise((r) => pipe.on('close', r));
    const m = /^OK (\d+) (\d+)\n$/.exec(ready);
    assert.ok(m, ready);
    assert.equal(m[2], fs.readFileSync(path.join(c.stateDir, SHIM_FILES.shimPid), 'utf8').trim());
    assert.equal(m[1], fs.readFileSync(path.join(c.stateDir, SHIM_FILES.containerPid), 'utf8').trim());
    c.runc('start', c.id);
  });

  it('fails create with FAILED_PRECONDITION naming a shim binary that is missing', async function () {
    const c = container({ args: ['true'] });
    const missing = path.join(root, 'no-such-berth-shim');
    await assert.rejects(ShimClient.spawn(spawnOpts(c, { shimBinary: missing })), (err: BerthError) => {
      assert.equal(err.kind, 'FAILED_PRECONDITION');
      assert.match(err.message, /berth-shim binary .*no-such-berth-shim is missing/);
      return true;
    });
  });

  it('splits long lines into P records followed by an F record', async function () {
    const c = container({ args: ['sh', '-c', 'head -c 250 /dev/zero | tr "\\0" a; echo; echo short'] });
    const shim = await ShimClient.spawn(spawnOpts(c, { logMaxLine: 100 }));
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    const recs = readLog(c).map((r) => [r.stream, r.tag, r.content.length]);
    assert.deepEqual(recs, [
      ['stdout', 'P', 100],
      ['stdout', 'P', 100],
      ['stdout', 'F', 50],
      ['stdout', 'F', 5],
    ]);
  });

  it('logs a large output completely, with an unterminated last line as P', async function () {
    const c = container({ args: ['sh', '-c', 'yes 0123456789 | head -c 2000000'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    const recs = readLog(c);
    assert.equal(recs.length, 181819);
    assert.ok(recs.slice(0, -1).every((r) => r.tag === 'F' && r.content === '0123456789'));
    assert.deepEqual(recs.at(-1), { ...recs.at(-1)!, tag: 'P', content: '01' });
  });

  it('never lets an attach client that does not read block the container', async function () {
    const c = container({ args: ['sh', '-c', 'yes 0123456789 | head -c 3000000'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    const stuck = net.createConnection(shim.socketPath);
    stuck.write('ATTACH stdout\n');
    stuck.pause(); // never reads: the shim must drop it past its 1 MiB buffer
    const closed = new Promise((r) => stuck.on('close', r));
    stuck.on('error', () => undefined);
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    stuck.destroy();
    await closed;
    const recs = readLog(c);
    assert.equal(recs.length, 272728);
    assert.equal(recs.at(-1)?.content, '012');
    assert.match(fs.readFileSync(path.join(c.stateDir, SHIM_FILES.shimLog), 'utf8'), /dropping slow attach client/);
  });

  it('records death by signal as 128+signal', async function () {
    const c = container({ args: ['sleep', '100'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    c.runc('start', c.id);
    c.runc('kill', c.id, 'KILL');
    const exit = await shim.waitExit();
    assert.equal(exit.signal, 9);
    assert.equal(exit.exitCode, 137);
  });

  it('reports an OOM kill from the container memory cgroup', async function () {
    const cgroupsPath = `/berth-shim-test-${process.pid}/oom-${Date.now()}`;
    const c = container({ args: ['tail', '/dev/zero'], cgroupsPath, memoryLimit: 16 * 1024 * 1024 });
    const shim = await ShimClient.spawn(spawnOpts(c, { cgroupPaths: [cgroupsPath] }));
    try {
      c.runc('start', c.id);
      const exit = await shim.waitExit();
      assert.equal(exit.exitCode, 137);
      assert.equal(exit.oomKilled, true);
    } finally {
      c.cleanup();
      for (const hier of ['memory', 'unified', 'pids', 'cpu', 'cpuacct', 'blkio', 'devices', 'freezer', 'cpuset', 'systemd']) {
        try {
          fs.rmdirSync(path.join('/sys/fs/cgroup', hier, path.dirname(cgroupsPath)));
        } catch {
          // not created in this hierarchy
        }
      }
    }
  });

  it('fails create with the runtime error message', async function () {
    const c = container({ args: ['true'] });
    fs.rmSync(path.join(c.bundle, 'config.json'));
    await assert.rejects(ShimClient.spawn(spawnOpts(c)), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, 'FAILED_PRECONDITION');
      assert.match(err.message, /create failed.*config\.json/);
      return true;
    });
  });

  it('attaches: stdin in, stdout and stderr out, exit on the stream', async function () {
    const c = container({ args: ['sh', '-c', 'read line; echo got:$line; echo err:$line >&2; cat; echo eof'] });
    const shim = await ShimClient.spawn(spawnOpts(c, { stdin: true, stdinOnce: true }));
    const attach = await shim.attach({ stdin: true, stdout: true, stderr: true });
    // A second, output-only client sees the same output.
    const watcher = await shim.attach({ stdout: true });
    c.runc('start', c.id);
    let out = '';
    let err = '';
    let watched = '';
    attach.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    attach.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    watcher.stdout!.on('data', (d: Buffer) => (watched += d.toString()));
    attach.stdin!.write('hello\n');
    await waitFor('stdout echo', () => out.includes('got:hello'));
    attach.stdin!.write('more\n');
    attach.stdin!.end(); // stdin-once: closes the container's stdin, so cat ends
    const exit = await attach.exit;
    assert.equal(exit?.exitCode, 0);
    assert.equal(out, 'got:hello\nmore\neof\n');
    assert.equal(err, 'err:hello\n');
    assert.equal(watched, out);
    assert.equal((await watcher.exit)?.exitCode, 0);
    const logged = readLog(c).map((r) => `${r.stream}:${r.content}`);
    assert.deepEqual(logged.filter((l) => l.startsWith('stdout')), ['stdout:got:hello', 'stdout:more', 'stdout:eof']);
    assert.deepEqual(logged.filter((l) => l.startsWith('stderr')), ['stderr:err:hello']);
  });

  it('closes stdin on CLOSE_STDIN and rejects stdin attach without --stdin', async function () {
    const c = container({ args: ['sh', '-c', 'cat; echo done'] });
    const shim = await ShimClient.spawn(spawnOpts(c, { stdin: true }));
    c.runc('start', c.id);
    await shim.closeStdin();
    assert.equal((await shim.waitExit()).exitCode, 0);
    assert.deepEqual(readLog(c).map((r) => r.content), ['done']);

    const d = container({ args: ['true'] });
    const shim2 = await ShimClient.spawn(spawnOpts(d));
    await assert.rejects(shim2.attach({ stdin: true }), /stdin was not enabled/);
    d.runc('start', d.id);
    await shim2.waitExit();
  });

  it('reopens the log file after the kubelet renamed it', async function () {
    const c = container({ args: ['sh', '-c', 'echo one; read x; echo two'] });
    const shim = await ShimClient.spawn(spawnOpts(c, { stdin: true }));
    c.runc('start', c.id);
    await waitFor('first line', () => readLog(c).length === 1);
    const rotated = `${c.logPath}.1`;
    fs.renameSync(c.logPath, rotated);
    await shim.reopenLog();
    assert.ok(fs.existsSync(c.logPath), 'reopen creates a new file');
    const a = await shim.attach({ stdin: true });
    a.stdin!.write('go\n');
    await shim.waitExit();
    a.close();
    assert.deepEqual(readLog(c, rotated).map((r) => r.content), ['one']);
    assert.deepEqual(readLog(c).map((r) => r.content), ['two']);
  });

  it('opens and reopens its log without following a symlink at the file or its directory', async function () {
    const victim = path.join(root, `victim-${Date.now()}`);
    fs.writeFileSync(victim, 'precious\n');
    // A symlink where the log file goes: start fails, the target is untouched.
    const c1 = container({ args: ['true'] });
    fs.symlinkSync(victim, c1.logPath);
    await assert.rejects(ShimClient.spawn(spawnOpts(c1)), /log/);
    // A symlink as the log's directory.
    const c2 = container({ args: ['true'] });
    const elsewhere = fs.mkdtempSync(path.join(root, 'elsewhere-'));
    fs.symlinkSync(elsewhere, path.join(c2.dir, 'logs'));
    await assert.rejects(ShimClient.spawn(spawnOpts(c2, { logPath: path.join(c2.dir, 'logs', '0.log') })), /log/);
    assert.deepEqual(fs.readdirSync(elsewhere), [], 'a log was created through the directory symlink');
    // A symlink planted between rotation and REOPEN: the reopen is refused, logging goes on to the old file.
    const c3 = container({ args: ['sh', '-c', 'echo one; read x; echo two'] });
    const shim = await ShimClient.spawn(spawnOpts(c3, { stdin: true }));
    c3.runc('start', c3.id);
    await waitFor('first line', () => readLog(c3).length === 1);
    const rotated = `${c3.logPath}.1`;
    fs.renameSync(c3.logPath, rotated);
    fs.symlinkSync(victim, c3.logPath);
    await assert.rejects(shim.reopenLog(), /reopen/);
    const a = await shim.attach({ stdin: true });
    a.stdin!.write('go\n');
    await shim.waitExit();
    a.close();
    assert.equal(fs.readFileSync(victim, 'utf8'), 'precious\n');
    assert.deepEqual(readLog(c3, rotated).map((r) => r.content), ['one', 'two']);
  });

  it('runs a tty container: resize before start, output logged as stdout', async function () {
    const c = container({ args: ['sh', '-c', 'stty size; tty; echo err >&2'], tty: true });
    const shim = await ShimClient.spawn(spawnOpts(c, { tty: true }));
    await shim.resize(100, 40);
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    const recs = readLog(c);
    assert.ok(recs.every((r) => r.stream === 'stdout'));
    assert.deepEqual(
      recs.map((r) => r.content),
      ['40 100', '/dev/pts/0', 'err'],
    );
  });

  it('relays stdin and resize over attach in tty mode', async function () {
    const c = container({ args: ['sh', '-c', 'stty -echo; read x; stty size; echo got:$x'], tty: true });
    const shim = await ShimClient.spawn(spawnOpts(c, { tty: true, stdin: true }));
    const a = await shim.attach({ stdin: true, stdout: true });
    let out = '';
    a.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.runc('start', c.id);
    // Frames are handled in order: the size is set before `read` returns.
    a.resize(81, 21);
    a.stdin!.write('hi\r');
    const exit = await a.exit;
    assert.equal(exit?.exitCode, 0);
    assert.match(out, /21 81\r\ngot:hi\r\n/);
  });

  it('survives its parent being SIGKILLed and is found again with connect()', async function () {
    const c = container({ args: ['sh', '-c', 'echo alive; sleep 0.3'] });
    // A stand-in berthd: a separate node process that spawns the shim.
    const script = `
      const { ShimClient } = require(${JSON.stringify(path.join(REPO, 'dist', 'src', 'runtime', 'shim_client.js'))});
      ShimClient.spawn(JSON.parse(process.argv[1])).then(
        (s) => { process.stdout.write('ready ' + s.containerPid + '\\n'); setInterval(() => {}, 1000); },
        (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(1); });`;
    const parent = spawn(process.execPath, ['-e', script, JSON.stringify(spawnOpts(c))], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    parent.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    await waitFor('parent ready', () => text.includes('\n'));
    assert.match(text, /^ready \d+/);
    const exited = new Promise((r) => parent.on('exit', r));
    parent.kill('SIGKILL');
    await exited;

    const shim = await ShimClient.connect(c.stateDir);
    assert.ok(shim.shimPid && isShimProcess(shim.shimPid, c.stateDir));
    assert.equal(await shim.isAlive(), true);
    assert.equal((await shim.state()).pid, shim.containerPid);
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    assert.deepEqual(readLog(c).map((r) => r.content), ['alive']);
  });

  it('answers protocol errors with ERR and refuses a second shim in the same state dir', async function () {
    const c = container({ args: ['true'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    const sock = net.createConnection(shim.socketPath);
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.write('BOGUS\nRESIZE 1 99999\nSTATE extra\n\nRESIZE 80 24\nSTATE\n');
    await waitFor('six replies', () => text.split('\n').length > 6);
    sock.destroy();
    const lines = text.trim().split('\n');
    assert.deepEqual(lines.slice(0, 5), [
      'ERR unknown command',
      'ERR usage: RESIZE <width> <height> (0-65535)',
      'ERR STATE takes no arguments',
      'ERR empty command',
      'ERR resize: container has no terminal',
    ]);
    assert.match(lines[5]!, /^OK \{"pid":\d+,"status":"running"/);

    await assert.rejects(ShimClient.spawn(spawnOpts(c, { id: `${c.id}-2` })), /already running/);
    assert.equal(await shim.isAlive(), true);
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
  });

  it('takes a command line of 4096 bytes, refuses a longer one, and full-size frames sent along with ATTACH', async function () {
    const c = container({ args: ['wc', '-c'] });
    const shim = await ShimClient.spawn(spawnOpts(c, { stdin: true, stdinOnce: true }));
    const cmd = net.createConnection(shim.socketPath);
    let replies = '';
    cmd.on('data', (d: Buffer) => (replies += d.toString()));
    cmd.write(`${'X'.repeat(4096)}\n${'Y'.repeat(4097)}`);
    await waitFor('two replies', () => replies.split('\n').length > 2);
    cmd.destroy();
    assert.deepEqual(replies.split('\n').slice(0, 2), ['ERR unknown command', 'ERR command too long']);

    // One write: the ATTACH line, a stdin frame of the largest size (type 0), then stdin EOF (type 4).
    const header = (type: number, len: number): Buffer => Buffer.from([type, len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255]);
    const attach = net.createConnection(shim.socketPath);
    attach.on('data', () => undefined);
    attach.write(Buffer.concat([Buffer.from('ATTACH stdin\n'), header(0, 32768), Buffer.alloc(32768, 'a'), header(4, 0)]));
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    attach.destroy();
    assert.deepEqual(readLog(c).map((r) => r.content.trim()), ['32768']);
  });

  it('moves itself into the cgroup given by --shim-cgroup', async function () {
    // cgroup v2 (unified on hybrid hosts): there an exited-but-unreaped shim
    // does not keep the cgroup busy, so the test can remove it right away.
    const base = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) =>
      fs.existsSync(path.join(d, 'cgroup.subtree_control')),
    );
    if (!base) this.skip();
    const cg = path.join(base, `berth-shim-test-${process.pid}`);
    fs.mkdirSync(cg);
    try {
      const c = container({ args: ['sleep', '0.1'] });
      const shim = await ShimClient.spawn(spawnOpts(c, { shimCgroups: [cg] }));
      const procs = fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      assert.deepEqual(procs, [shim.shimPid]);
      c.runc('start', c.id);
      await shim.waitExit();
      await waitFor('shim gone', () => !isShimProcess(shim.shimPid!, c.stateDir));
    } finally {
      await waitFor('cgroup removed', () => {
        try {
          fs.rmdirSync(cg);
          return true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EBUSY') return false;
          throw err;
        }
      });
    }
  });

  it('leaks no shim fds (nor its umask) into the container', async function () {
    // `; true` keeps sh as pid 1 instead of exec-ing ls.
    const c = container({ args: ['sh', '-c', 'ls /proc/1/fd; umask'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    c.runc('start', c.id);
    assert.equal((await shim.waitExit()).exitCode, 0);
    // ... and the container gets the caller's umask, not the shim's own.
    const umask = /^Umask:\s*(\d+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1];
    assert.deepEqual(readLog(c).map((r) => r.content), ['0', '1', '2', umask]);
  });

  it('reaps the runtime and leaves no zombies', async function () {
    const c = container({ args: ['sh', '-c', 'sleep 0.5'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    const shimPid = shim.shimPid!;
    assert.ok(shimPid > 0);
    // After create: the only child left is the container's init, not a zombie.
    assert.deepEqual(childrenOf(shimPid), [[shim.containerPid, procState(shim.containerPid)]]);
    assert.notEqual(procState(shim.containerPid), 'Z');
    c.runc('start', c.id);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(childrenOf(shimPid).every(([, st]) => st !== 'Z'));
    await shim.waitExit();
    await waitFor('shim gone', () => !isShimProcess(shimPid, c.stateDir));
    assert.equal(procState(shim.containerPid), null);
  });
  it('START releases a created runc container as `runc start` would: running, fifo gone, output logged', async function () {
    const c = container({ args: ['sh', '-c', 'echo started; sleep 100'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    const fifo = path.join(c.runtimeRoot, c.id, 'exec.fifo');
    assert.ok(fs.statSync(fifo).isFIFO(), 'runc keeps the exec fifo while created');
    await shim.start();
    assert.equal(fs.existsSync(fifo), false);
    assert.equal(JSON.parse(c.runc('state', c.id)).status, 'running');
    await waitFor('output logged', () => readLog(c).some((r) => r.content === 'started'));
    // A second START: nothing is created any more.
    await assert.rejects(shim.start(), /not in the created state/);
    c.runc('kill', c.id, 'KILL');
    assert.equal((await shim.waitExit()).exitCode, 137);
  });

  it('START of a container whose init died is refused, and the exit is recorded', async function () {
    const c = container({ args: ['sleep', '100'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    process.kill(shim.containerPid, 'SIGKILL');
    await assert.rejects(shim.start(), /already dead/);
    assert.equal((await shim.waitExit()).signal, 9);
  });

  it('START after the shim recorded its init\'s death and left says the container is already dead', async function () {
    const c = container({ args: ['sleep', '100'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    process.kill(shim.containerPid, 'SIGKILL');
    assert.equal((await shim.waitExit()).signal, 9);
    await waitFor('shim exit', () => !fs.existsSync(path.join(c.stateDir, SHIM_FILES.controlSocket)));
    await assert.rejects(shim.start(), /already dead/);
  });
});
