import { strict as assert } from 'node:assert';
import { silentLogger } from '../../src/log/logger';
import { StreamingServer } from '../../src/streaming/server';
import type { ExecRequest__Output } from '../../src/gen/runtime/v1/ExecRequest';
import {
  connectSpdy,
  connectWebSocket,
  execSpdy,
  execWebSocket,
  isFailure,
  messageBytes,
  type SpdyClient,
  type WsClient,
} from '../helpers/stream_client';
import { FakeContainer, localBackends } from '../helpers/local_backends';
import { encodeFrame, OP_BINARY, OP_CONTINUATION, OP_PING } from '../helpers/ws_frames';
import { codecFor, decodeChannelMessage } from '../../src/streaming/ws_channels';
import type { RawData } from 'ws';

function execReq(cmd: string[], o: Partial<ExecRequest__Output> = {}): ExecRequest__Output {
  return { containerId: 'c1', cmd, tty: false, stdin: false, stdout: true, stderr: true, ...o };
}

const V4 = ['v4.channel.k8s.io'];

describe('streaming: exec and attach', function () {
  this.timeout(20000);
  const backends = localBackends();
  let server: StreamingServer;

  before(async () => {
    server = new StreamingServer({ address: '127.0.0.1', port: 0, tokenTtlSeconds: 60, backends, logger: silentLogger() });
    await server.start();
  });
  after(async () => {
    await server.stop();
  });

  async function spdy(url: string, protocols = V4): Promise<SpdyClient> {
    const c = await connectSpdy(url, protocols);
    if (isFailure(c)) throw new Error(`upgrade failed: ${c.status} ${c.body}`);
    return c;
  }
  async function ws(url: string, protocols: string[]): Promise<WsClient> {
    const c = await connectWebSocket(url, protocols);
    if (isFailure(c)) throw new Error(`upgrade failed: ${c.status} ${c.body}`);
    return c;
  }

  it('issues single-use URLs on the configured address', () => {
    const a = server.getExecUrl(execReq(['true']));
    const b = server.getExecUrl(execReq(['true']));
    assert.match(a, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{16,}$/);
    assert.notEqual(a, b);
    assert.match(server.getAttachUrl({ containerId: 'c', stdin: true, stdout: true, stderr: false, tty: false }), /\/attach\//);
    assert.match(server.getPortForwardUrl({ podSandboxId: 'p', port: [80] }), /\/portforward\//);
  });

  it('SPDY v4: separates stdout and stderr and reports the exit code as the kubelet does', async () => {
    const c = await spdy(server.getExecUrl(execReq(['sh', '-c', 'echo out; echo err >&2; exit 3'])));
    assert.equal(c.protocol, 'v4.channel.k8s.io');
    const r = await execSpdy(c, { stderr: true });
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(
      r.error,
      '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
    );
  });

  it('SPDY v4: success status', async () => {
    const c = await spdy(server.getExecUrl(execReq(['echo', 'hi'], { stderr: false })));
    const r = await execSpdy(c, {});
    assert.equal(r.stdout, 'hi\n');
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
  });

  it('SPDY: negotiates the client\'s first supported protocol; v3 and v2 write plain error text', async () => {
    const c = await spdy(server.getExecUrl(execReq(['sh', '-c', 'exit 2'])), ['v9.channel.k8s.io', 'v3.channel.k8s.io', 'v4.channel.k8s.io']);
    assert.equal(c.protocol, 'v3.channel.k8s.io');
    const r = await execSpdy(c, { stderr: true });
    assert.equal(r.error, 'command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2');
    const ok = await spdy(server.getExecUrl(execReq(['true'])), ['v2.channel.k8s.io']);
    assert.equal((await execSpdy(ok, { stderr: true })).error, '');
  });

  it('SPDY v5 behaves as v4', async () => {
    const c = await spdy(server.getExecUrl(execReq(['true'])), ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    assert.equal(c.protocol, 'v5.channel.k8s.io');
    assert.equal((await execSpdy(c, { stderr: true })).error, '{"metadata":{},"status":"Success"}');
  });

  it('SPDY: pipes stdin (1 MiB, with backpressure) and propagates EOF', async () => {
    const input = Buffer.alloc(1 << 20, 'abcdefghij');
    const c = await spdy(server.getExecUrl(execReq(['cat'], { stdin: true, stderr: false })));
    const r = await execSpdy(c, { stdin: input });
    assert.equal(r.stdout.length, input.length);
    assert.ok(r.stdout === input.toString());
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
  });

  it('SPDY: tty exec gets a terminal and the resize events', async () => {
    backends.exec.resizes.length = 0;
    const c = await spdy(
      server.getExecUrl(execReq(['sh', '-c', 'test -t 0 && test -t 1 && echo IS-A-TTY; sleep 0.3'], { tty: true, stderr: false })),
    );
    const r = await execSpdy(c, { tty: true, resize: [{ Width: 100, Height: 40 }, { Width: 120, Height: 50 }] });
    assert.match(r.stdout, /IS-A-TTY\r?\n/);
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
    assert.deepEqual(backends.exec.resizes, [
      { width: 100, height: 40 },
      { width: 120, height: 50 },
    ]);
  });

  it('reports a backend failure as an InternalError status', async () => {
    const c = await spdy(server.getExecUrl(execReq(['true'], { containerId: 'missing' })));
    const r = await execSpdy(c, { stderr: true });
    assert.equal(
      r.error,
      '{"metadata":{},"status":"Failure","message":"Internal error occurred: container missing not found","reason":"InternalError","details":{"causes":[{"message":"container missing not found"}]},"code":500}',
    );
  });

  it('WebSocket v4 binary: channels, the initial empty stdout frame and the status', async () => {
    const c = await ws(server.getExecUrl(execReq(['sh', '-c', 'echo out; echo err >&2; exit 1'])), ['v4.channel.k8s.io']);
    assert.equal(c.protocol, 'v4.channel.k8s.io');
    const r = await execWebSocket(c, {});
    assert.deepEqual(r.messages?.[0], [1, Buffer.alloc(0)]);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.match(r.error, /"reason":"NonZeroExitCode","details":\{"causes":\[\{"reason":"ExitCode","message":"1"\}\]\}/);
  });

  it('WebSocket v4.base64: ASCII channel digit and base64 payloads', async () => {
    const c = await ws(server.getExecUrl(execReq(['printf', '\\001\\377bin'], { stderr: false })), [
      'v4.base64.channel.k8s.io',
    ]);
    assert.equal(c.protocol, 'v4.base64.channel.k8s.io');
    const r = await execWebSocket(c, {});
    assert.equal(r.stdout, Buffer.from([1, 0xff, 0x62, 0x69, 0x6e]).toString());
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
  });

  it('WebSocket v5: stdin close signal ends the process input', async () => {
    const c = await ws(server.getExecUrl(execReq(['sh', '-c', 'wc -c; echo done'], { stdin: true, stderr: false })), [
      'v5.channel.k8s.io',
      'v4.channel.k8s.io',
    ]);
    assert.equal(c.protocol, 'v5.channel.k8s.io');
    const r = await execWebSocket(c, { stdin: 'hello world' });
    assert.equal(r.stdout.replace(/\s+/g, ' ').trim(), '11 done');
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
  });

  it('WebSocket without a subprotocol uses binary channels and v1 error text', async () => {
    const c = await ws(server.getExecUrl(execReq(['sh', '-c', 'exit 4'], { stderr: false })), []);
    assert.equal(c.protocol, '');
    const r = await execWebSocket(c, {});
    assert.equal(r.error, 'command terminated with non-zero exit code: error executing command [sh -c exit 4], exit code 4');
  });

  it('kills and reaps the process when the client goes away', async () => {
    const c = await spdy(server.getExecUrl(execReq(['sleep', '60'], { stderr: false })));
    await c.session.openStream([['streamType', 'error']]);
    await c.session.openStream([['streamType', 'stdout']]);
    const deadline = Date.now() + 5000;
    while (backends.exec.pids.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [pid] = [...backends.exec.pids];
    assert.ok(pid, 'process started');
    c.socket.destroy();
    while (backends.exec.pids.has(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(backends.exec.pids.has(pid), false, 'process reaped');
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });

  it('attach over SPDY and WebSocket: input reaches the container, output reaches the client, exit ends it', async () => {
    const container = new FakeContainer();
    backends.attach.containers.set('a1', container);
    const url = server.getAttachUrl({ containerId: 'a1', stdin: true, stdout: true, stderr: false, tty: false });
    const c = await spdy(url);
    const pending = execSpdy(c, { stdin: 'ping', keepStdinOpen: true });
    const deadline = Date.now() + 5000;
    while (container.input.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    container.exit();
    const r = await pending;
    assert.equal(r.stdout, 'echo: ping');
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');

    const container2 = new FakeContainer();
    backends.attach.containers.set('a2', container2);
    const w = await ws(server.getAttachUrl({ containerId: 'a2', stdin: true, stdout: true, stderr: false, tty: false }), [
      'v5.channel.k8s.io',
    ]);
    const pending2 = execWebSocket(w, { stdin: 'pong' });
    await container2.inputEnded;
    container2.exit();
    const r2 = await pending2;
    assert.equal(r2.stdout, 'echo: pong');
    assert.equal(r2.error, '{"metadata":{},"status":"Success"}');
  });

  async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  it('SPDY: a plain exec starts before its streams open; its output waits, bounded, and then all arrives in order', async () => {
    const size = 4 * 1024 * 1024;
    const c = await spdy(server.getExecUrl(execReq(['sh', '-c', `head -c ${size} /dev/zero; echo end`], { stderr: false })));
    // No stream open yet: client-go opens them one round trip at a time; the process need not wait for that.
    await waitFor(() => backends.exec.pids.size > 0);
    assert.equal(backends.exec.pids.size, 1, 'the process started before any stream was open');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(backends.exec.pids.size, 1, 'with nowhere to put its output, the writer is held, not buffered without end');
    const r = await execSpdy(c, { stdout: true });
    assert.equal(r.stdout.length, size + 4);
    assert.ok(r.stdout.endsWith('\0end\n'));
    assert.equal(r.error, '{"metadata":{},"status":"Success"}');
    assert.equal(backends.exec.pids.size, 0);
  });

  it('SPDY: an exec with stdin starts only once the stdin stream is open', async () => {
    const c = await spdy(server.getExecUrl(execReq(['cat'], { stdin: true, stderr: false })));
    const errorStream = await c.session.openStream([['streamType', 'error']]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(backends.exec.pids.size, 0, 'not started without its input stream');
    const stdin = await c.session.openStream([['streamType', 'stdin']]);
    await waitFor(() => backends.exec.pids.size > 0);
    assert.equal(backends.exec.pids.size, 1);
    const out = await c.session.openStream([['streamType', 'stdout']]);
    const chunks: Buffer[] = [];
    out.on('data', (d: Buffer) => chunks.push(d));
    const status: Buffer[] = [];
    errorStream.on('data', (d: Buffer) => status.push(d));
    const ended = new Promise((r) => errorStream.once('end', r));
    stdin.end('hello');
    await ended;
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
    assert.equal(Buffer.concat(status).toString(), '{"metadata":{},"status":"Success"}');
    c.session.close();
  });

  it('backpressure: a client that stops reading stalls the process instead of buffering its output', async () => {
    const size = 64 * 1024 * 1024;
    const c = await spdy(server.getExecUrl(execReq(['head', '-c', String(size), '/dev/zero'], { stderr: false })));
    const errorStream = await c.session.openStream([['streamType', 'error']]);
    const out = await c.session.openStream([['streamType', 'stdout']]);
    await waitFor(() => backends.exec.pids.size > 0);
    c.socket.pause();
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(backends.exec.pids.size, 1, 'the writer is blocked while the client does not read');
    let got = 0;
    out.on('data', (d: Buffer) => (got += d.length));
    const errText: Buffer[] = [];
    errorStream.on('data', (d: Buffer) => errText.push(d));
    const ended = new Promise((r) => errorStream.once('end', r));
    c.socket.resume();
    await ended;
    assert.equal(got, size);
    assert.equal(Buffer.concat(errText).toString(), '{"metadata":{},"status":"Success"}');
    assert.equal(backends.exec.pids.size, 0);
  });

  it('backpressure over WebSocket: a client that stops reading stalls the process; resumed, every byte arrives', async () => {
    const size = 64 * 1024 * 1024;
    const c = await ws(server.getExecUrl(execReq(['head', '-c', String(size), '/dev/zero'], { stderr: false })), ['v5.channel.k8s.io']);
    let got = 0;
    c.ws.on('message', (m: RawData) => {
      const d = decodeChannelMessage(codecFor(c.protocol), messageBytes(m));
      if (d && 'channel' in d && d.channel === 1) got += d.data.length;
    });
    const closed = new Promise((r) => c.ws.once('close', r));
    // Stop reading before the process can have written much (after the helper's own first resume).
    await new Promise((r) => setImmediate(r));
    c.ws.pause();
    await waitFor(() => backends.exec.pids.size > 0);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(backends.exec.pids.size, 1, 'the writer is blocked while the client does not read');
    c.ws.resume();
    await closed;
    assert.equal(got, size);
    assert.equal(backends.exec.pids.size, 0);
  });

  it('SPDY: answers PING', async () => {
    const c = await spdy(server.getExecUrl(execReq(['true'], { stderr: false })));
    await c.session.ping();
    await execSpdy(c, {});
  });

  it('WebSocket: reassembles fragmented messages, answers ping, and carries resize on channel 4', async () => {
    backends.exec.resizes.length = 0;
    const c = await ws(
      server.getExecUrl(execReq(['sh', '-c', 'head -c 10; echo; sleep 0.2'], { stdin: true, tty: true, stderr: false })),
      ['v4.channel.k8s.io'],
    );
    const pong = new Promise((r) => c.ws.once('pong', r));
    const messages: Buffer[] = [];
    c.ws.on('message', (m: RawData) => {
      const d = decodeChannelMessage(codecFor(c.protocol), messageBytes(m));
      if (d && 'channel' in d && d.channel === 1) messages.push(d.data);
    });
    const closed = new Promise((r) => c.ws.once('close', r));
    c.socket.write(encodeFrame(OP_PING, Buffer.from('hi'), true));
    c.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('{"Width":33,"Height":11}')]));
    c.socket.write(encodeFrame(OP_BINARY, Buffer.from([0, 0x61, 0x62, 0x63]), true, false));
    c.socket.write(encodeFrame(OP_CONTINUATION, Buffer.from('defghij\n'), true, true));
    await pong;
    await closed;
    assert.match(Buffer.concat(messages).toString(), /abcdefghij/);
    assert.deepEqual(backends.exec.resizes, [{ width: 33, height: 11 }]);
  });
});
