import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BERTHD_MAIN, berthdNodeEnv, berthdNodeFlags, TestBerthd } from '../helpers/berthd';
import * as pkg from '../../package.json';

/** The repository's native helpers (make build). */
const BUILD_DIR = path.resolve(__dirname, '..', '..', '..', 'build');

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function grpcCode(err: unknown): number | undefined {
  return (err as grpc.ServiceError).code;
}

describe('berthd', function () {
  let d: TestBerthd;

  before(async () => {
    d = await TestBerthd.start({ metrics: true });
  });
  after(async () => {
    await d.cleanup();
  });

  it('answers Version', async () => {
    const v = await d.cri.runtime.Version({ version: '' });
    assert.equal(v.runtimeName, 'berth');
    assert.equal(v.runtimeVersion, pkg.version);
    assert.equal(v.runtimeApiVersion, 'v1');
  });

  it('answers Status with both conditions and, verbose, the config', async () => {
    const s = await d.cri.runtime.Status({ verbose: true });
    const types = s.status?.conditions.map((c) => c.type);
    assert.deepEqual(types, ['RuntimeReady', 'NetworkReady']);
    for (const c of s.status?.conditions ?? []) {
      if (!c.status) assert.ok(c.reason && c.message, `condition ${c.type} false without reason/message`);
    }
    const config = JSON.parse(s.info.config) as { socket: string; runtime: { default_handler: string } };
    assert.equal(config.socket, d.socket);
    assert.equal(config.runtime.default_handler, 'runc');
    assert.ok(s.runtimeHandlers.some((h) => h.name === 'runc'));
    const plain = await d.cri.runtime.Status({ verbose: false });
    assert.deepEqual(plain.info, {});
  });

  it('answers RuntimeConfig with the cgroup driver', async () => {
    const r = await d.cri.runtime.RuntimeConfig({});
    assert.equal(r.linux?.cgroupDriver, 'CGROUPFS');
  });

  it('serves the socket root-only (0660)', () => {
    const st = fs.statSync(d.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 0);
  });

  it('answers a malformed message with INVALID_ARGUMENT and keeps serving', async () => {
    const client = new grpc.Client(`unix://${d.socket}`, grpc.credentials.createInsecure());
    try {
      // Field 1 with wire type 7, which does not exist: undecodable.
      const bad = Buffer.from([0x0f, 0xff]);
      const err = await new Promise<unknown>((resolve) => {
        client.makeUnaryRequest(
          '/runtime.v1.RuntimeService/Version',
          (b: Buffer) => b,
          (b: Buffer) => b,
          bad,
          (e) => resolve(e),
        );
      });
      assert.equal(grpcCode(err), grpc.status.INVALID_ARGUMENT);
      assert.match((err as grpc.ServiceError).details, /malformed request/);
    } finally {
      client.close();
    }
    const v = await d.cri.runtime.Version({ version: '' });
    assert.equal(v.runtimeName, 'berth');
  });

  // Every RPC of the proto is served (test/cri/cri136.test.ts); one the proto lacks is named back.
  it('answers an RPC it does not know with UNIMPLEMENTED naming it', async () => {
    const client = new grpc.Client(`unix://${d.socket}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<unknown>((resolve) => {
        client.makeUnaryRequest(
          '/runtime.v1.RuntimeService/NoSuchRpc',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (e) => resolve(e),
        );
      });
      assert.equal(grpcCode(err), grpc.status.UNIMPLEMENTED);
      assert.match((err as grpc.ServiceError).details, /NoSuchRpc/);
    } finally {
      client.close();
    }
  });

  it('exports per-RPC metrics that pass promtool', async function () {
    await d.cri.runtime.Version({ version: '' });
    await assert.rejects(d.cri.runtime.CheckpointContainer({ containerId: '', location: '', timeout: '0' }));
    const body = await fetchText(`http://127.0.0.1:${d.metricsPort}/metrics`);
    assert.match(body, /grpc_server_handled_total\{grpc_type="unary",grpc_service="runtime.v1.RuntimeService",grpc_method="Version",grpc_code="OK"\} \d+/);
    assert.match(body, /grpc_server_started_total\{.*grpc_method="Version".*\} \d+/);
    assert.match(body, /grpc_server_handling_seconds_bucket\{.*grpc_method="Version".*\}/);
    assert.match(body, /grpc_server_handled_total\{.*grpc_method="CheckpointContainer",grpc_code="InvalidArgument"\} 1/);
    assert.match(body, /berth_build_info\{version="[^"]+",nodejs_version="v\d+/);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    if (promtool.error) throw new Error(`promtool missing (apt-get install prometheus): ${promtool.error.message}`);
    assert.equal(promtool.status, 0, `promtool check metrics failed:\n${promtool.stdout}${promtool.stderr}`);
  });

  it("runs with deploy/node-flags: V8's young generation stays small (an idle daemon's footprint)", async () => {
    const flags = berthdNodeFlags();
    const semi = /^--max-semi-space-size=(\d+)$/.exec(flags.find((f) => f.startsWith('--max-semi-space-size=')) ?? '');
    assert.ok(semi, `deploy/node-flags sets --max-semi-space-size: ${flags.join(' ')}`);
    const cmdline = fs.readFileSync(`/proc/${d.proc?.pid}/cmdline`, 'utf8').split('\0');
    for (const f of flags) assert.ok(cmdline.includes(f), `berthd runs with ${f}`);
    // Node 20's default lets the new space grow to 16 MiB and more, which the daemon then keeps.
    const body = await fetchText(`http://127.0.0.1:${d.metricsPort}/metrics`);
    const m = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(body);
    assert.ok(m, 'the new space size is exported');
    assert.ok(Number(m[1]) <= 3 * Number(semi[1]) * 1024 * 1024, `new space ${m[1]} bytes`);
  });

  it('runs with deploy/node-env: glibc keeps few malloc arenas (an idle daemon\'s footprint)', () => {
    const env = berthdNodeEnv();
    assert.equal(env.MALLOC_ARENA_MAX, '2', `deploy/node-env: ${JSON.stringify(env)}`);
    const environ = fs.readFileSync(`/proc/${d.proc?.pid}/environ`, 'utf8').split('\0');
    for (const [name, value] of Object.entries(env)) assert.ok(environ.includes(`${name}=${value}`), `berthd runs with ${name}=${value}`);
  });

  it('gives freed malloc memory back once quiet: the trim module is loaded once its calls have stopped', async () => {
    await d.cri.runtime.Version({ version: '' });
    const trimModule = path.join(BUILD_DIR, 'berth-malloc.node');
    const mapped = (): boolean => fs.readFileSync(`/proc/${d.proc?.pid}/maps`, 'utf8').includes(trimModule);
    for (let i = 0; i < 100 && !mapped(); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(mapped(), `berthd maps ${trimModule}`);
  });

  it('sleeps when idle: its main thread wakes a few times a second at most (no 10 or 100 ms sampling timer)', async () => {
    const pid = d.proc?.pid;
    const switches = (): number => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1]);
    await new Promise((r) => setTimeout(r, 500));
    const before = switches();
    await new Promise((r) => setTimeout(r, 2000));
    const woke = switches() - before;
    // prom-client's event-loop monitor alone would wake it 100 times a second
    // at its default, 10 at 100 ms; it samples once a second.
    assert.ok(woke < 12, `${woke} wake-ups in 2 s`);
  });

  it('logs each RPC at debug with method, code and duration', () => {
    assert.match(d.output, /DEBUG Version method="Version" code="OK" ms=\d/);
  });

  it('refuses a second berthd on the same socket or state dir', async () => {
    const cfg = fs.readFileSync(d.configPath, 'utf8').replace(/\[metrics\][^[]*/, '[metrics]\nenabled = false\n');
    const file = path.join(d.dir, 'second.toml');
    fs.writeFileSync(file, cfg);
    const r = spawnSync(process.execPath, [BERTHD_MAIN, '--config', file], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /another berthd \(pid \d+\) is already using state directory/);
    // Other state dirs, same socket: refused because the socket is live.
    const other = path.join(d.dir, 'other');
    const r2 = spawnSync(
      process.execPath,
      [BERTHD_MAIN, '--config', file, '--root', path.join(other, 'root'), '--state', path.join(other, 'state')],
      { encoding: 'utf8', timeout: 20000 },
    );
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /already serving on/);
    assert.ok(fs.statSync(d.socket).isSocket(), 'the running daemon keeps its socket');
    const v = await d.cri.runtime.Version({ version: '' });
    assert.equal(v.runtimeName, 'berth');
  });
});

describe('berthd lifecycle', function () {
  it('replaces a stale socket left by a crash, and exits 0 on SIGTERM removing it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
    const sock = path.join(dir, 'berth.sock');
    // A process that listens on the socket and is SIGKILLed leaves the inode behind, as a crash does.
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((r) => holder.stdout.once('data', r));
    const dead = new Promise((r) => holder.once('exit', r));
    holder.kill('SIGKILL');
    await dead;
    assert.ok(fs.lstatSync(sock).isSocket(), 'stale socket in place');
    const d = await TestBerthd.start({ dir });
    try {
      const v = await d.cri.runtime.Version({ version: '' });
      assert.equal(v.runtimeName, 'berth');
      const code = await d.stop('SIGTERM');
      assert.equal(code, 0);
      assert.ok(!fs.existsSync(sock), 'socket removed on shutdown');
      assert.ok(!fs.existsSync(path.join(d.state, 'berthd.pid')), 'lock released');
    } finally {
      await d.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends open GetContainerEvents streams at shutdown instead of waiting for them', async () => {
    const d = await TestBerthd.start();
    try {
      const stream = d.cri.containerEvents();
      const ended = new Promise<string>((r) => stream.on('end', () => r('end')).on('error', (e) => r(`error ${e.message}`)));
      stream.on('data', () => undefined);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      const proc = d.proc;
      assert.ok(proc);
      const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
      proc.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.ok(Date.now() - t0 < 8000, 'not held up until the drain bound');
      assert.equal(await ended, 'end');
    } finally {
      await d.cleanup();
    }
  });

  it('exits 0 on SIGINT too', async () => {
    const d = await TestBerthd.start();
    try {
      await d.cri.runtime.Version({ version: '' });
      assert.equal(await d.stop('SIGINT'), 0);
      assert.ok(!fs.existsSync(d.socket));
    } finally {
      await d.cleanup();
    }
  });

  it('starts with no config file at all and the built-in defaults for everything but paths', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
    const sock = path.join(dir, 's.sock');
    const proc = spawn(
      process.execPath,
      [BERTHD_MAIN, '--socket', sock, '--root', path.join(dir, 'r'), '--state', path.join(dir, 's'), '--no-metrics'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stderr.on('data', (b: Buffer) => (out += b.toString()));
    try {
      const deadline = Date.now() + 20000;
      while (!out.includes('berthd serving') && Date.now() < deadline && proc.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(out, /berthd serving/);
      assert.ok(fs.statSync(sock).isSocket());
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
