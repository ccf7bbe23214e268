import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { silentLogger } from '../../src/log/logger';
import { StreamingServer } from '../../src/streaming/server';
import { NetnsPortForwardBackend } from '../../src/streaming/portforward_netns';
import { CHANNEL_CLOSE, codecFor, decodeChannelMessage, encodeChannelMessage } from '../../src/streaming/ws_channels';
import { collect, connectSpdy, connectWebSocket, isFailure, messageBytes, openPortForward, type SpdyClient } from '../helpers/stream_client';
import { SpdySession } from '../../src/streaming/spdy';
import { createWebSocketStream, type RawData } from 'ws';
import { localBackends, startEchoServer } from '../helpers/local_backends';

async function spdyPf(url: string): Promise<SpdyClient> {
  const c = await connectSpdy(url, ['portforward.k8s.io']);
  if (isFailure(c)) throw new Error(`upgrade failed: ${c.status} ${c.body}`);
  assert.equal(c.protocol, 'portforward.k8s.io');
  return c;
}

/** One request/response over a forwarded connection: send, half-close, read all. */
async function roundTrip(c: SpdyClient, port: number, id: string, payload: string): Promise<{ data: string; error: string }> {
  const pf = await openPortForward(c.session, port, id);
  const reply = collect(pf.data);
  pf.data.end(payload);
  const [data, error] = await Promise.all([reply, pf.errorText]);
  return { data: data.toString(), error };
}

describe('streaming: port-forward', function () {
  this.timeout(30000);
  let server: StreamingServer;
  let echoA: Awaited<ReturnType<typeof startEchoServer>>;
  let echoB: Awaited<ReturnType<typeof startEchoServer>>;

  before(async () => {
    echoA = await startEchoServer();
    echoB = await startEchoServer();
    server = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends: localBackends(),
      logger: silentLogger(),
    });
    await server.start();
  });
  after(async () => {
    await server.stop();
    await echoA.close();
    await echoB.close();
  });

  it('SPDY: several ports and many connections at once, with half-close', async () => {
    const c = await spdyPf(server.getPortForwardUrl({ podSandboxId: 'pod1', port: [] }));
    const jobs = [];
    for (let i = 0; i < 20; i++) {
      const port = i % 2 ? echoA.port : echoB.port;
      jobs.push(roundTrip(c, port, String(i), `hello ${i} `.repeat(1000)));
    }
    const results = await Promise.all(jobs);
    results.forEach((r, i) => {
      assert.equal(r.data, `hello ${i} `.repeat(1000) + 'BYE');
      assert.equal(r.error, '');
    });
    // The session stays usable after all of that.
    assert.equal((await roundTrip(c, echoA.port, 'again', 'x')).data, 'xBYE');
    c.session.close();
  });

  it('SPDY: a refused connection is reported on the error stream', async () => {
    const c = await spdyPf(server.getPortForwardUrl({ podSandboxId: 'pod1', port: [] }));
    const r = await roundTrip(c, 1, 'r1', 'x');
    assert.match(r.error, /^error forwarding port 1 to pod pod1: .*ECONNREFUSED/);
    assert.equal(r.data, '');
    const bad = await roundTrip(c, 0, 'r2', 'x');
    assert.match(bad.error, /invalid port/);
    c.session.close();
  });

  it('WebSocket tunnelling SPDY (SPDY/3.1+portforward.k8s.io, client-go 1.30+)', async () => {
    const w = await connectWebSocket(server.getPortForwardUrl({ podSandboxId: 'pod1', port: [] }), [
      'SPDY/3.1+portforward.k8s.io',
    ]);
    if (isFailure(w)) throw new Error(w.body);
    assert.equal(w.protocol, 'SPDY/3.1+portforward.k8s.io');
    const session = new SpdySession(createWebSocketStream(w.ws), 'client');
    const c: SpdyClient = { session, protocol: 'portforward.k8s.io', socket: w.socket };
    const [a, b] = await Promise.all([roundTrip(c, echoA.port, '1', 'one'), roundTrip(c, echoB.port, '2', 'two')]);
    assert.equal(a.data, 'oneBYE');
    assert.equal(b.data, 'twoBYE');
    session.close();
  });

  it('WebSocket: per-port channel pairs, each starting with the little-endian port', async () => {
    const ports = [echoA.port, echoB.port];
    const w = await connectWebSocket(server.getPortForwardUrl({ podSandboxId: 'pod1', port: ports }), [
      'v4.channel.k8s.io',
    ]);
    if (isFailure(w)) throw new Error(w.body);
    const codec = codecFor(w.protocol);
    const perChannel = new Map<number, Buffer[]>();
    w.ws.on('message', (m: RawData) => {
      const d = decodeChannelMessage(codec, messageBytes(m));
      if (d && 'channel' in d) perChannel.set(d.channel, [...(perChannel.get(d.channel) ?? []), d.data]);
    });
    const closed = new Promise((r) => w.ws.once('close', r));
    const send = (ch: number, s: string): void => {
      const m = encodeChannelMessage(codec, ch, Buffer.from(s));
      w.ws.send(m.data, { binary: m.binary });
    };
    send(0, 'to A');
    send(2, 'to B');
    const deadline = Date.now() + 5000;
    const text = (ch: number): string => Buffer.concat((perChannel.get(ch) ?? []).slice(1)).toString();
    while ((text(0) !== 'to A' || text(2) !== 'to B') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 4; i++) {
      const first = perChannel.get(i)?.[0];
      assert.ok(first, `channel ${i} got its port prefix`);
      assert.equal(first.readUInt16LE(0), ports[i >> 1]);
      assert.equal(first.length, 2);
    }
    assert.equal(text(0), 'to A');
    assert.equal(text(2), 'to B');
    assert.equal(text(1), '');
    w.ws.close();
    await closed;
    assert.ok(CHANNEL_CLOSE === 255);
  });
});

/** Live child processes of this test process. */
function childProcesses(): number {
  let n = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) n++;
    } catch {
      // exited while we looked
    }
  }
  return n;
}

describe('streaming: port-forward into a network namespace (berth-nsdial)', function () {
  let netnsBackend: NetnsPortForwardBackend;
  this.timeout(30000);
  const ns = `berth-test-pf-${process.pid}`;
  let echo: ChildProcess | undefined;
  let server: StreamingServer;
  const port = 18080;

  before(async function () {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const script =
      "const net=require('net');net.createServer({allowHalfOpen:true},c=>{c.on('data',d=>c.write(d));" +
      `c.on('end',()=>c.end('BYE'));c.on('error',()=>{});}).listen(${port},'127.0.0.1',()=>console.log('ready'));`;
    echo = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      echo?.stdout?.once('data', () => resolve());
      echo?.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
    });
    const backends = localBackends();
    netnsBackend = new NetnsPortForwardBackend({
      netnsPath: (id) => (id === 'pod-ns' ? `/run/netns/${ns}` : undefined),
      idleMs: 200,
    });
    backends.portForward = netnsBackend;
    server = new StreamingServer({ address: '127.0.0.1', port: 0, tokenTtlSeconds: 60, backends, logger: silentLogger() });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    if (echo && echo.exitCode === null) {
      const gone = new Promise((r) => echo?.once('exit', r));
      echo.kill('SIGKILL');
      await gone;
    }
    execFileSync('ip', ['netns', 'del', ns]);
  });

  it('holds many connections with one helper process, not one process per connection', async () => {
    const c = await spdyPf(server.getPortForwardUrl({ podSandboxId: 'pod-ns', port: [] }));
    const before = childProcesses();
    const open = [];
    for (let i = 0; i < 20; i++) {
      const pf = await openPortForward(c.session, port, `many-${i}`);
      const first = new Promise<string>((r) => pf.data.once('data', (d: Buffer) => r(d.toString())));
      pf.data.write(`ping ${i}`);
      assert.equal(await first, `ping ${i}`);
      open.push(pf);
    }
    // All 20 are open at once; the nc relay cost a process (two, with nsenter's) for each.
    assert.equal(netnsBackend.helpers, 1);
    assert.ok(childProcesses() - before <= 1, `${childProcesses() - before} processes for 20 connections`);
    for (const pf of open) pf.data.end();
    await Promise.all(open.map((pf) => pf.errorText));
    // Idle, the helper goes away (it must not hold the pod's namespace).
    const deadline = Date.now() + 10_000;
    while (netnsBackend.helpers > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(netnsBackend.helpers, 0);
    c.session.close();
  });

  it('reaches 127.0.0.1 inside the pod netns, with half-close and error reporting', async () => {
    const c = await spdyPf(server.getPortForwardUrl({ podSandboxId: 'pod-ns', port: [] }));
    const big = 'abcdefgh'.repeat(40000);
    const [r1, r2] = await Promise.all([roundTrip(c, port, '1', big), roundTrip(c, port, '2', 'small')]);
    assert.equal(r1.data.length, big.length + 3);
    assert.ok(r1.data === big + 'BYE');
    assert.equal(r2.data, 'smallBYE');
    // Nothing listens on port+1 inside the namespace (it does not matter what the host has there).
    const refused = await roundTrip(c, port + 1, '3', 'x');
    assert.match(refused.error, /error forwarding port 18081 to pod pod-ns: .*(refused|connect)/i);
    c.session.close();

    const unknown = await spdyPf(server.getPortForwardUrl({ podSandboxId: 'nope', port: [] }));
    const r = await roundTrip(unknown, port, '1', 'x');
    assert.match(r.error, /pod sandbox nope not found/);
    unknown.session.close();
  });
});
