// Misbehaving streaming clients: a peer that floods small frames and never
// reads, one whose header block inflates past the limit, one that opens more
// port-forward connections than allowed. Each must leave berthd bounded: the
// session stops reading, is dropped after the stall bound, and its exec is
// killed and reaped.
import { strict as assert } from 'node:assert';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../src/log/logger';
import type { ExecRequest__Output } from '../../src/gen/runtime/v1/ExecRequest';
import { StreamingServer } from '../../src/streaming/server';
import { encodeHeaderBlock, HeaderCompressor } from '../../src/streaming/spdy';
import { encodeFrame, OP_PING, rawWebSocket } from '../helpers/ws_frames';
import { localBackends, startEchoServer } from '../helpers/local_backends';
import { connectSpdy, isFailure, openPortForward, upgradeRequest } from '../helpers/stream_client';

const STALL_MS = 1500;

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Writes `frame` over and over without reading anything back, until the
 * socket stays full for a second (the server stopped reading) or `max` bytes
 * went out. Returns the bytes written.
 */
async function flood(socket: Duplex, frame: Buffer, max: number): Promise<number> {
  const batch = Buffer.concat(Array.from({ length: Math.ceil(65536 / frame.length) }, () => frame));
  let sent = 0;
  while (sent < max && !socket.destroyed) {
    sent += batch.length;
    if (socket.write(batch)) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1000);
      socket.once('drain', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!drained) break;
  }
  return sent;
}


/** A SPDY/3 control frame, built by hand. */
function control(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8003, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([head, payload]);
}

describe('streaming: hostile clients', function () {
  this.timeout(60_000);
  const backends = localBackends();
  let server: StreamingServer;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  before(async () => {
    echo = await startEchoServer();
    server = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends,
      logger: silentLogger(),
      writeStallMs: STALL_MS,
      portForwardsPerSession: 2,
      portForwardsPerDaemon: 3,
    });
    await server.start();
  });
  after(async () => {
    await server.stop();
    await echo.close();
  });

  /** Waits for one more exec process than `known` and returns its pid. */
  async function newExec(known: Set<number>): Promise<number> {
    let pid: number | undefined;
    await until('the exec to start', () => (pid = [...backends.exec.pids].find((p) => !known.has(p))) !== undefined);
    return pid as number;
  }
  const reaped = (pid: number): Promise<void> => until('the exec to be killed and reaped', () => !backends.exec.pids.has(pid));
  /**
   * Waits for berthd to have dropped the session (seen from the server: a
   * client that has stopped reading may never notice its socket go).
   */
  async function droppedByServer(pid: number): Promise<void> {
    await reaped(pid);
    await until('the session to end', () => server.activeSessions === 0);
  }

  const sleepReq = (): ExecRequest__Output => ({ containerId: 'c', cmd: ['sleep', '60'], tty: false, stdin: false, stdout: true, stderr: true });

  it('SPDY: a client that never opens all its streams loses the exec started early: killed and reaped at the timeout', async () => {
    const impatient = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends,
      logger: silentLogger(),
      streamCreationTimeoutMs: 500,
    });
    await impatient.start();
    try {
      for (const opened of [[], ['error'], ['error', 'stdout']]) {
        const known = new Set(backends.exec.pids);
        const c = await connectSpdy(impatient.getExecUrl(sleepReq()), ['v4.channel.k8s.io']);
        if (isFailure(c)) throw new Error(c.body);
        for (const t of opened) await c.session.openStream([['streamType', t]]);
        const pid = await newExec(known);
        await reaped(pid);
        await until('the session to end', () => impatient.activeSessions === 0);
        c.socket.destroy();
      }
    } finally {
      await impatient.stop();
    }
  });

  it('SPDY: a client flooding PINGs without reading is throttled, then dropped, and its exec killed', async () => {
    const known = new Set(backends.exec.pids);
    const c = await connectSpdy(server.getExecUrl(sleepReq()), ['v4.channel.k8s.io']);
    if (isFailure(c)) throw new Error(c.body);
    for (const t of ['error', 'stdout', 'stderr']) await c.session.openStream([['streamType', t]]);
    const pid = await newExec(known);
    c.socket.pause(); // never read again
    const ping = control(6, 0, Buffer.from([0, 0, 0, 1]));
    const sent = await flood(c.socket, ping, 256 * 1024 * 1024);
    // Without backpressure berthd reads on and queues a pong for every ping: all 256 MiB go through.
    assert.ok(sent < 64 * 1024 * 1024, `berthd kept reading: ${sent} bytes of PINGs accepted`);
    await droppedByServer(pid);
    c.socket.destroy();
  });

  it('WebSocket: a client flooding pings without reading is throttled, then dropped, and its exec killed', async () => {
    const known = new Set(backends.exec.pids);
    const socket = await rawWebSocket(server.getExecUrl(sleepReq()), ['v5.channel.k8s.io']);
    if (isFailure(socket)) throw new Error(socket.body);
    const pid = await newExec(known);
    socket.pause();
    const sent = await flood(socket, encodeFrame(OP_PING, Buffer.alloc(125, 1), true), 256 * 1024 * 1024);
    assert.ok(sent < 64 * 1024 * 1024, `berthd kept reading: ${sent} bytes of pings accepted`);
    await droppedByServer(pid);
    socket.destroy();
  });

  it('WebSocket: a client that reads nothing while output is queued is dropped after the stall bound, and its exec killed', async () => {
    const known = new Set(backends.exec.pids);
    const socket = await rawWebSocket(
      server.getExecUrl({ containerId: 'c', cmd: ['yes'], tty: false, stdin: false, stdout: true, stderr: false }),
      ['v5.channel.k8s.io'],
    );
    if (isFailure(socket)) throw new Error(socket.body);
    socket.pause(); // never read (so this side cannot see the connection go either)
    const pid = await newExec(known);
    await droppedByServer(pid);
    socket.destroy();
  });

  it('SPDY: a header block inflating past the limit ends the session and kills its exec', async () => {
    const known = new Set(backends.exec.pids);
    const up = await upgradeRequest(server.getExecUrl(sleepReq()), { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': ['v4.channel.k8s.io'] });
    if (isFailure(up)) throw new Error(up.body);
    const socket = up.socket;
    socket.resume(); // read (and drop) whatever berthd answers
    const z = new HeaderCompressor();
    const syn = (id: number, headers: Array<[string, string]>): Buffer => {
      const payload = Buffer.concat([Buffer.alloc(10), z.compress(encodeHeaderBlock(headers))]);
      payload.writeUInt32BE(id, 0);
      return control(1, 0, payload);
    };
    socket.write(Buffer.concat([syn(1, [['streamtype', 'error']]), syn(3, [['streamtype', 'stdout']]), syn(5, [['streamtype', 'stderr']])]));
    const pid = await newExec(known);
    // 128 KiB of headers on a HEADERS frame: more than the inflater buffers, and than the limit.
    const big = z.compress(encodeHeaderBlock([['x-pad', 'p'.repeat(128 * 1024)]]));
    const id = Buffer.alloc(4);
    id.writeUInt32BE(1);
    socket.write(control(8, 0, Buffer.concat([id, big])));
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy(); // the client goes away too: nothing may keep the exec alive
    await reaped(pid);
  });

  it('caps port-forward connections per session and per daemon', async () => {
    const a = await connectSpdy(server.getPortForwardUrl({ podSandboxId: 'p', port: [] }), ['portforward.k8s.io']);
    const b = await connectSpdy(server.getPortForwardUrl({ podSandboxId: 'p', port: [] }), ['portforward.k8s.io']);
    if (isFailure(a) || isFailure(b)) throw new Error('upgrade failed');
    const a1 = await openPortForward(a.session, echo.port, '1');
    const a2 = await openPortForward(a.session, echo.port, '2');
    const a3 = await openPortForward(a.session, echo.port, '3');
    assert.match(await a3.errorText, /too many port-forward connections in this session \(limit 2\)/);
    const b1 = await openPortForward(b.session, echo.port, '1');
    const b2 = await openPortForward(b.session, echo.port, '2');
    assert.match(await b2.errorText, /too many port-forward connections on this node \(limit 3\)/);
    assert.equal(server.activePortForwards, 3);
    // Open ones work; closing them gives their places back.
    for (const pf of [a1, a2, b1]) pf.data.end('x');
    await Promise.all([a1, a2, b1].map((pf) => pf.errorText));
    await until('connections to be released', () => server.activePortForwards === 0);
    const b3 = await openPortForward(b.session, echo.port, '3');
    b3.data.end('y');
    assert.equal(await b3.errorText, '');
    a.session.close();
    b.session.close();
  });
});
