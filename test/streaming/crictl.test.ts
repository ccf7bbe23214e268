// Interoperability with a real Kubernetes client: crictl uses client-go's
// remotecommand and portforward (SPDY via moby/spdystream, and WebSocket).
// Skipped where crictl is not installed (it is not a Debian package).
import { strict as assert } from 'node:assert';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CriServer } from '../../src/cri/server';
import { silentLogger } from '../../src/log/logger';
import { StreamingServer } from '../../src/streaming/server';
import { localBackends, startEchoServer } from '../helpers/local_backends';
import { runningWorkloads, testCriContext } from '../helpers/cri_context';

function findCrictl(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, 'crictl');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('streaming: interop with crictl (client-go)', function () {
  this.timeout(30000);
  const crictl = findCrictl();
  let dir: string;
  let socket: string;
  let streaming: StreamingServer;
  let cri: CriServer;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  before(async function () {
    if (!crictl) return this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-crictl-'));
    socket = path.join(dir, 'cri.sock');
    echo = await startEchoServer();
    streaming = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends: localBackends(),
      logger: silentLogger(),
    });
    await streaming.start();
    const ctx = testCriContext({ streaming, ...runningWorkloads() });
    cri = new CriServer(ctx, undefined);
    await new Promise<void>((resolve, reject) =>
      cri.grpcServer.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  });

  after(async () => {
    if (!crictl) return;
    await new Promise<void>((r) => cri.grpcServer.tryShutdown(() => r()));
    await streaming.stop();
    await echo.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const endpoint = (): string[] => ['--runtime-endpoint', `unix://${socket}`, '--image-endpoint', `unix://${socket}`];

  function run(args: string[], input?: string): Promise<Run> {
    return new Promise((resolve) => {
      const child = execFile(crictl as string, [...endpoint(), ...args], { timeout: 20000 }, (err, stdout, stderr) =>
        resolve({ code: child.exitCode, stdout, stderr }),
      );
      if (input !== undefined) child.stdin?.end(input);
      else child.stdin?.end();
    });
  }

  for (const transport of ['spdy', 'websocket']) {
    it(`exec over ${transport}: separated output and the exit code`, async () => {
      const r = await run(['exec', '-r', transport, 'c1', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.stdout, 'out\n');
      assert.match(r.stderr, /err\n/);
      assert.match(r.stderr, /command terminated with exit code 3/);
      assert.equal(r.code, 1);
    });

    it(`exec -i over ${transport}: stdin reaches the command and its EOF ends it`, async () => {
      const r = await run(['exec', '-i', '-r', transport, 'c1', 'sh', '-c', 'cat; echo done'], 'hello\n');
      assert.equal(r.stdout, 'hello\ndone\n');
      assert.equal(r.code, 0);
    });
  }

  for (const transport of ['spdy', 'websocket']) {
    it(`port-forward over ${transport}`, async () => {
      const local = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as net.AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      const child = spawn(crictl as string, [...endpoint(), 'port-forward', '-r', transport, 'pod1', `${local}:${echo.port}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (d: Buffer) => {
            if (d.toString().includes('Forwarding from')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`crictl port-forward exited ${code}`)));
        });
        for (const msg of ['first', 'second']) {
          const reply = await new Promise<string>((resolve, reject) => {
            const c = net.connect({ host: '127.0.0.1', port: local, allowHalfOpen: true });
            let got = '';
            c.on('data', (d) => (got += d.toString()));
            c.on('end', () => resolve(got));
            c.on('error', reject);
            c.end(msg);
          });
          assert.equal(reply, `${msg}BYE`);
        }
      } finally {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
      }
    });
  }
});
