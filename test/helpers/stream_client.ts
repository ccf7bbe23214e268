// A streaming client for tests: speaks SPDY/3.1 and WebSocket to berth's
// streaming server the way client-go (kubectl, crictl) does: SPDY with
// berth's own framing code in the client role, WebSocket with the `ws`
// client (an implementation independent of the server's framing use).
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { SpdySession, type SpdyStream } from '../../src/streaming/spdy';
import { codecFor, decodeChannelMessage, encodeChannelMessage, CHANNEL_CLOSE } from '../../src/streaming/ws_channels';

export interface HttpFailure {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Trust for https:// streaming URLs (the server's CA certificate, PEM). */
export interface ClientTls {
  ca?: string | Buffer;
}

export function upgradeRequest(
  url: string,
  headers: Record<string, string | string[]>,
  tls: ClientTls = {},
  method = 'POST',
): Promise<{ res: http.IncomingMessage; socket: Duplex } | HttpFailure> {
  return new Promise((resolve, reject) => {
    const options = { method, headers: { Connection: 'Upgrade', ...headers } };
    const req = url.startsWith('https:') ? https.request(url, { ...options, ca: tls.ca }) : http.request(url, options);
    req.on('upgrade', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (head.length) socket.unshift(head);
      resolve({ res, socket });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export function isFailure(x: unknown): x is HttpFailure {
  return typeof x === 'object' && x !== null && 'status' in x && 'body' in x;
}

export interface SpdyClient {
  session: SpdySession;
  protocol: string;
  socket: Duplex;
}

export async function connectSpdy(url: string, protocols: string[], tls?: ClientTls): Promise<SpdyClient | HttpFailure> {
  const r = await upgradeRequest(url, { Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': protocols }, tls);
  if (isFailure(r)) return r;
  return {
    session: new SpdySession(r.socket, 'client'),
    protocol: String(r.res.headers['x-stream-protocol-version'] ?? ''),
    socket: r.socket,
  };
}

export interface WsClient {
  ws: WebSocket;
  protocol: string;
  /** The upgraded socket, for writing frames by hand. */
  socket: Duplex;
}

/** Opens a WebSocket with the `ws` client; an HTTP answer other than 101 comes back as a HttpFailure. */
export function connectWebSocket(url: string, protocols: string[], tls: ClientTls = {}): Promise<WsClient | HttpFailure> {
  return new Promise((resolve, reject) => {
    // The offer goes out as a plain header and the answer is taken before ws checks it: ws allows
    // only RFC 7230 tokens, and client-go's "SPDY/3.1+portforward.k8s.io" is not one.
    const headers: Record<string, string> = protocols.length ? { 'Sec-WebSocket-Protocol': protocols.join(', ') } : {};
    const ws = new WebSocket(url, { perMessageDeflate: false, headers, ...(tls.ca ? { ca: tls.ca } : {}) });
    let socket: Duplex | undefined;
    let protocol = '';
    ws.once('upgrade', (res: http.IncomingMessage) => {
      socket = res.socket;
      protocol = String(res.headers['sec-websocket-protocol'] ?? '');
      delete res.headers['sec-websocket-protocol'];
    });
    ws.once('unexpected-response', (_req: http.ClientRequest, res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      // Hold the messages that came with the upgrade until the caller has had a turn to listen.
      ws.pause();
      setImmediate(() => ws.resume());
      ws.off('error', reject);
      ws.on('error', () => undefined);
      resolve({ ws, protocol, socket: socket as Duplex });
    });
  });
}

/** The bytes of a WebSocket message event (`ws` hands Buffers unless told otherwise). */
export function messageBytes(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export function collect(r: Readable): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    r.on('data', (d: Buffer) => parts.push(d));
    r.once('end', () => resolve(Buffer.concat(parts)));
    r.once('close', () => resolve(Buffer.concat(parts)));
  });
}

export interface ExecOptions {
  stdin?: Buffer | string;
  /** Keep stdin open (do not send EOF) — default false. */
  keepStdinOpen?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  resize?: Array<{ Width: number; Height: number }>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Raw content of the error stream/channel. */
  error: string;
  /** WebSocket only: every message as [channel, bytes] in arrival order. */
  messages?: Array<[number, Buffer]>;
}

/** Runs a remotecommand session over SPDY like client-go's v4 streamer. */
export async function execSpdy(client: SpdyClient, opts: ExecOptions): Promise<ExecResult> {
  const { session } = client;
  const open = (type: string): Promise<SpdyStream> => session.openStream([['streamType', type]]);
  const errorStream = await open('error');
  const errorP = collect(errorStream);
  const stdinStream = opts.stdin !== undefined ? await open('stdin') : undefined;
  const stdoutStream = opts.stdout !== false ? await open('stdout') : undefined;
  const stderrStream = opts.stderr && !opts.tty ? await open('stderr') : undefined;
  const resizeStream = opts.tty && client.protocol !== 'v2.channel.k8s.io' ? await open('resize') : undefined;
  const stdoutP = stdoutStream ? collect(stdoutStream) : Promise.resolve(Buffer.alloc(0));
  const stderrP = stderrStream ? collect(stderrStream) : Promise.resolve(Buffer.alloc(0));
  for (const size of opts.resize ?? []) resizeStream?.write(JSON.stringify(size) + '\n');
  if (stdinStream) {
    stdinStream.write(opts.stdin as Buffer | string);
    if (!opts.keepStdinOpen) stdinStream.end();
  }
  const [stdout, stderr, error] = await Promise.all([stdoutP, stderrP, errorP]);
  session.close();
  return { stdout: stdout.toString(), stderr: stderr.toString(), error: error.toString() };
}

/** Runs a remotecommand session over a k8s channel WebSocket. */
export function execWebSocket(client: WsClient, opts: ExecOptions): Promise<ExecResult> {
  const codec = codecFor(client.protocol);
  const out: Buffer[][] = [[], [], [], [], []];
  const messages: Array<[number, Buffer]> = [];
  const send = (ch: number, data: Buffer): void => {
    const m = encodeChannelMessage(codec, ch, data);
    client.ws.send(m.data, { binary: m.binary });
  };
  return new Promise((resolve) => {
    client.ws.on('message', (data: RawData) => {
      const msg = messageBytes(data);
      const d = decodeChannelMessage(codec, msg);
      if (d && 'channel' in d) {
        messages.push([d.channel, d.data]);
        out[d.channel]?.push(d.data);
      } else if (msg.length) {
        messages.push([msg[0], msg.subarray(1)]);
      }
    });
    client.ws.once('close', () =>
      resolve({
        stdout: Buffer.concat(out[1]).toString(),
        stderr: Buffer.concat(out[2]).toString(),
        error: Buffer.concat(out[3]).toString(),
        messages,
      }),
    );
    for (const size of opts.resize ?? []) send(4, Buffer.from(JSON.stringify(size)));
    if (opts.stdin !== undefined) {
      send(0, Buffer.from(opts.stdin));
      if (!opts.keepStdinOpen && codec.supportsClose) client.ws.send(Buffer.from([CHANNEL_CLOSE, 0]));
    }
  });
}

/** One forwarded connection over a SPDY port-forward session. */
export async function openPortForward(
  session: SpdySession,
  port: number,
  requestId: string,
): Promise<{ data: SpdyStream; error: SpdyStream; errorText: Promise<string> }> {
  const error = await session.openStream([
    ['streamType', 'error'],
    ['port', String(port)],
    ['requestID', requestId],
  ]);
  const errorText = collect(error).then((b) => b.toString());
  error.end();
  const data = await session.openStream([
    ['streamType', 'data'],
    ['port', String(port)],
    ['requestID', requestId],
  ]);
  return { data, error, errorText };
}
