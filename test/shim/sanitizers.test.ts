// berth-shim under AddressSanitizer/UBSan for one full lifecycle, and a short
// libFuzzer run over the control-protocol parsers.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ShimClient } from '../../src/runtime/shim_client';
import { buildShim, ContainerDirs, isShimProcess, makeBundle, makeRootfs, parseCriLog, tempRoot, waitFor } from './fixtures';

function clangWithFuzzer(): string | null {
  const cc = spawnSync('clang', ['--version'], { encoding: 'utf8' });
  if (cc.status !== 0) return 'clang is not installed';
  const rt = spawnSync('clang', ['-print-file-name=libclang_rt.fuzzer-x86_64.a'], { encoding: 'utf8' });
  const lib = rt.stdout.trim();
  if (rt.status !== 0 || !path.isAbsolute(lib) || !fs.existsSync(lib)) return 'libFuzzer runtime (libclang_rt.fuzzer) is missing';
  return null;
}

describe('berth-shim sanitizers', function () {
  let root: string;

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    root = tempRoot('berth-shim-san-');
  });

  after(function () {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('runs a lifecycle under ASan/UBSan with no reports', async function () {
    this.timeout(120_000);
    const asan = buildShim('asan');
    const rootfs = makeRootfs(root);
    const c = ContainerDirs.create(root);
    const reports = path.join(root, 'san');
    try {
      c.bundle = makeBundle(c.dir, rootfs, { args: ['sh', '-c', 'read x; echo got:$x; echo e >&2; exit 5'] });
      const env = {
        ...process.env,
        ASAN_OPTIONS: `log_path=${reports}:detect_leaks=1:abort_on_error=0`,
        UBSAN_OPTIONS: `log_path=${reports}:print_stacktrace=1:halt_on_error=1`,
      };
      const shim = await ShimClient.spawn({
        id: c.id,
        bundle: c.bundle,
        stateDir: c.stateDir,
        runtimeRoot: c.runtimeRoot,
        runtime: '/usr/sbin/runc',
        logPath: c.logPath,
        logMaxLine: 4,
        stdin: true,
        stdinOnce: true,
        shimBinary: asan,
        env,
      });
      const a = await shim.attach({ stdin: true, stdout: true, stderr: true });
      let out = '';
      a.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      a.stderr!.resume();
      await shim.state();
      c.runc('start', c.id);
      await assert.rejects(shim.resize(10, 10), /no terminal/);
      fs.renameSync(c.logPath, `${c.logPath}.1`);
      await shim.reopenLog();
      a.stdin!.end('hello\n');
      assert.equal((await a.exit)?.exitCode, 5);
      assert.equal(out, 'got:hello\n');
      const recs = parseCriLog(fs.readFileSync(c.logPath, 'utf8'));
      const show = (stream: string): string[] =>
        recs.filter((r) => r.stream === stream).map((r) => `${r.tag}${r.content}`);
      assert.deepEqual(show('stdout'), ['Pgot:', 'Phell', 'Fo']);
      assert.deepEqual(show('stderr'), ['Fe']);
      // The tty paths: console socket, pty master, resize.
      const t = ContainerDirs.create(root);
      try {
        t.bundle = makeBundle(t.dir, rootfs, { args: ['sh', '-c', 'stty size'], tty: true });
        const tshim = await ShimClient.spawn({
          id: t.id,
          bundle: t.bundle,
          stateDir: t.stateDir,
          runtimeRoot: t.runtimeRoot,
          runtime: '/usr/sbin/runc',
          logPath: t.logPath,
          tty: true,
          stdin: true,
          shimBinary: asan,
          env,
        });
        await tshim.resize(7, 3);
        t.runc('start', t.id);
        assert.equal((await tshim.waitExit()).exitCode, 0);
        assert.deepEqual(parseCriLog(fs.readFileSync(t.logPath, 'utf8')).map((r) => r.content), ['3 7']);
        await waitFor('asan tty shim exit', () => !isShimProcess(tshim.shimPid!, t.stateDir), 15_000);
      } finally {
        t.cleanup();
      }
      // Leak checks run when the shim exits.
      await waitFor('asan shim exit', () => !isShimProcess(shim.shimPid!, c.stateDir), 15_000);
      const found = fs.readdirSync(root).filter((f) => f.startsWith('san'));
      const text = found.map((f) => fs.readFileSync(path.join(root, f), 'utf8')).join('\n');
      assert.deepEqual(found, [], `sanitizer reports:\n${text}`);
    } catch (err) {
      // Whatever went wrong, the sanitizer reports and shim.log say why.
      const extra = fs
        .readdirSync(root)
        .filter((f) => f.startsWith('san'))
        .map((f) => fs.readFileSync(path.join(root, f), 'utf8'));
      const shimLog = path.join(c.stateDir, 'shim.log');
      if (fs.existsSync(shimLog)) extra.push(`shim.log:\n${fs.readFileSync(shimLog, 'utf8')}`);
      if (extra.length && err instanceof Error) err.message += `\n${extra.join('\n')}`;
      throw err;
    } finally {
      c.cleanup();
    }
  });

  it('fuzzes the control-protocol parser for 20000 runs', function () {
    this.timeout(120_000);
    // Not skipped when the runtime is missing: deploy/install-deps.sh installs
    // it (libclang-rt-14-dev), so a CI without it is misconfigured.
    const why = clangWithFuzzer();
    assert.equal(why, null, `${why ?? ''}: run deploy/install-deps.sh (it installs libclang-rt-14-dev)`);
    const fuzzer = buildShim('fuzz');
    const corpus = path.join(root, 'corpus');
    fs.mkdirSync(corpus);
    const seeds = ['\0STATE', '\0RESIZE 80 24', '\0ATTACH stdin stdout', '\x01\x00\x00\x00\x00\x02hi\x03\x00\x00\x00\x04\x00\x50\x00\x18', '\x02a\nbb\r\nccccc'];
    seeds.forEach((s, i) => fs.writeFileSync(path.join(corpus, `seed${i}`), Buffer.from(s, 'latin1')));
    const out = execFileSync(fuzzer, ['-runs=20000', '-seed=1', '-max_len=4096', corpus], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: root,
    });
    assert.equal(typeof out, 'string');
  });
});
