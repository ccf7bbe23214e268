// A streaming client for tests: speaks SPDY/3.1 and WebSocket to berth's
// streaming server the way client-go (kubectl, crictl) does, reusing berth's
// own framing code in the client role.
import * as http from 'node:http';
import * as https from 'node:https';
import { randomBytes } from 'node:crypto';
import type { Duplex, Readable } from 'node:stream';
import { SpdySession, type SpdyStream } from '../../src/streaming/spdy';
import { acceptKey, WebSocketConnection } from '../../src/streaming/websocket';
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
): Promise<{ res: http.IncomingMessage; socket: Duplex } | HttpFailure> {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers: { Connection: 'Upgrade', ...headers } };
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
  ws: WebSocketConnection;
  protocol: string;
  socket: Duplex;
}

export async function connectWebSocket(url: string, protocols: string[], tls?: ClientTls): Promise<WsClient | HttpFailure> {
  const key = randomBytes(16).toString('base64');
  const headers: Record<string, string> = { Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key };
  if (protocols.length) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
  const r = await upgradeRequest(url, headers, tls);
  if (isFailure(r)) return r;
  if (r.res.headers['sec-websocket-accept'] !== acceptKey(key)) throw new Error('bad Sec-WebSocket-Accept');
  return {
    ws: new WebSocketConnection(r.socket, 'client'),
    protocol: String(r.res.headers['sec-websocket-protocol'] ?? ''),
    socket: r.socket,
  };
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
    client.ws.send(m.data, m.binary);
  };
  return new Promise((resolve) => {
    client.ws.on('message', (msg: Buffer) => {
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
