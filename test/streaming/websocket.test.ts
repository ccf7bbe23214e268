// The WebSocket framing berthd gets from `ws`, seen from a client that writes
// frames by hand: what RFC 6455 says a server must refuse is refused with the
// right close code, and the session behind it ends (its exec is killed).
import { strict as assert } from 'node:assert';
import type { Duplex } from 'node:stream';
import { silentLogger } from '../../src/log/logger';
import type { ExecRequest__Output } from '../../src/gen/runtime/v1/ExecRequest';
import { Limits } from '../../src/limits';
import { StreamingServer } from '../../src/streaming/server';
import { localBackends } from '../helpers/local_backends';
import { isFailure } from '../helpers/stream_client';
import { closeCodeFrom, closePayload, encodeFrame, OP_BINARY, OP_CLOSE, OP_TEXT, rawWebSocket } from '../helpers/ws_frames';

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Bytes that are not UTF-8: a lone continuation byte, then an overlong encoding of '/'. */
const NOT_UTF8 = Buffer.from([0x80, 0xc0, 0xaf]);

describe('streaming: WebSocket framing (ws)', function () {
  this.timeout(30_000);
  const backends = localBackends();
  let server: StreamingServer;

  before(async () => {
    server = new StreamingServer({ address: '127.0.0.1', port: 0, tokenTtlSeconds: 60, backends, logger: silentLogger() });
    await server.start();
  });
  after(async () => {
    await server.stop();
  });

  const sleepReq: ExecRequest__Output = { containerId: 'c', cmd: ['sleep', '60'], tty: false, stdin: true, stdout: true, stderr: false };

  /** Opens an exec of `sleep 60` by hand; resolves the socket and the exec's pid once it runs. */
  async function openSleep(protocol: string): Promise<{ socket: Duplex; pid: number; closeCode: Promise<number | undefined> }> {
    const known = new Set(backends.exec.pids);
    const socket = await rawWebSocket(server.getExecUrl(sleepReq), [protocol]);
    if (isFailure(socket)) throw new Error(socket.body);
    const closeCode = closeCodeFrom(socket);
    let pid: number | undefined;
    await until('the exec to start', () => (pid = [...backends.exec.pids].find((p) => !known.has(p))) !== undefined);
    return { socket, pid: pid as number, closeCode };
  }
  const reaped = (pid: number): Promise<void> => until('the exec to be killed and reaped', () => !backends.exec.pids.has(pid));

  it('a text frame that is not UTF-8 closes the connection with 1007 and ends the session', async () => {
    const s = await openSleep('v4.base64.channel.k8s.io');
    s.socket.write(encodeFrame(OP_TEXT, Buffer.concat([Buffer.from('0'), NOT_UTF8])));
    assert.equal(await s.closeCode, 1007);
    await reaped(s.pid);
  });

  it('a close frame whose reason is not UTF-8 is answered with 1007', async () => {
    const s = await openSleep('v5.channel.k8s.io');
    s.socket.write(encodeFrame(OP_CLOSE, closePayload(1000, NOT_UTF8)));
    assert.equal(await s.closeCode, 1007);
    await reaped(s.pid);
  });

  it('a close frame with a UTF-8 reason is echoed with its code', async () => {
    const s = await openSleep('v5.channel.k8s.io');
    s.socket.write(encodeFrame(OP_CLOSE, closePayload(1000, Buffer.from('bye — ok'))));
    assert.equal(await s.closeCode, 1000);
    await reaped(s.pid);
  });

  it('a text frame that is valid UTF-8 is data (base64 channel protocol), not an error', async () => {
    const known = new Set(backends.exec.pids);
    const socket = await rawWebSocket(
      server.getExecUrl({ containerId: 'c', cmd: ['head', '-c', '2'], tty: false, stdin: true, stdout: true, stderr: false }),
      ['v4.base64.channel.k8s.io'],
    );
    if (isFailure(socket)) throw new Error(socket.body);
    const closeCode = closeCodeFrom(socket);
    await until('the exec to start', () => [...backends.exec.pids].some((p) => !known.has(p)));
    socket.write(encodeFrame(OP_TEXT, Buffer.from(`0${Buffer.from('hi').toString('base64')}`)));
    assert.equal(await closeCode, 1000);
  });

  it('an unmasked client frame closes the connection with 1002', async () => {
    const s = await openSleep('v5.channel.k8s.io');
    s.socket.write(encodeFrame(OP_BINARY, Buffer.from([0, 0x61]), false));
    assert.equal(await s.closeCode, 1002);
    await reaped(s.pid);
  });

  it(`a message over ${Limits.websocketMessageBytes} bytes is refused with 1009 from its header alone`, async () => {
    const s = await openSleep('v5.channel.k8s.io');
    const head = Buffer.alloc(14);
    head[0] = 0x80 | OP_BINARY;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(Limits.websocketMessageBytes + 1), 2);
    s.socket.write(head); // the length is announced; no payload follows
    assert.equal(await s.closeCode, 1009);
    await reaped(s.pid);
  });
});
