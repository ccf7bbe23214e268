// The CRI streaming server. Exec, Attach and PortForward RPCs do not stream
// themselves: they park the request under a single-use token and return a URL
// on this server; the kubelet (or crictl) then opens that URL and upgrades to
// SPDY/3.1 or WebSocket. Paths: /exec/<token>, /attach/<token>, /portforward/<token>.
import * as http from 'node:http';
import * as https from 'node:https';
import { readTlsPair } from '../util/tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { BerthConfig } from '../config/config';
import type { AttachRequest__Output } from '../gen/runtime/v1/AttachRequest';
import type { ExecRequest__Output } from '../gen/runtime/v1/ExecRequest';
import type { PortForwardRequest__Output } from '../gen/runtime/v1/PortForwardRequest';
import type { Logger } from '../log/logger';
import { errorMessage, failedPrecondition } from '../errors';
import type { StreamingBackends } from './backend';
import type { RemoteCommandRequest } from './remotecommand';
import type { ConnectionBudget, PortForwardRequestInfo } from './portforward';
import { Limits } from '../limits';
import type { SpdyLimits, SpdySession } from './spdy';
import { TokenCache } from './token_cache';
import type { WebSocketAcceptor, WebSocketConnection } from './websocket';
import { lazy } from '../util/lazy';

/**
 * The streaming protocols (SPDY/3.1, WebSocket through `ws`, the remotecommand
 * and port-forward sessions): loaded at the first upgrade, so a berthd nobody
 * execs into, attaches to or port-forwards through never holds them.
 */
const protocols = lazy(async () => ({
  remotecommand: await import('./remotecommand'),
  portforward: await import('./portforward'),
  spdy: await import('./spdy'),
  websocket: await import('./websocket'),
}));
type Protocols = Awaited<ReturnType<typeof protocols>>;

export type StreamKind = 'exec' | 'attach' | 'portforward';

type Pending =
  | { kind: 'exec' | 'attach'; req: RemoteCommandRequest }
  | { kind: 'portforward'; req: PortForwardRequestInfo };

export interface StreamingServerOptions {
  address: string;
  /** 0 picks a free port. */
  port: number;
  tokenTtlSeconds: number;
  backends: StreamingBackends;
  logger: Logger;
  /** How long a SPDY client has to open a session's streams (kubelet: 30 s). */
  streamCreationTimeoutMs?: number;
  /** A session with no traffic either way for this long is cut (kubelet: 4 h). */
  idleTimeoutMs?: number;
  /** Serve HTTPS with this PEM certificate and key; URLs then start with https://. */
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** How long a session's output may stay queued, the peer reading nothing, before it is dropped (default: src/limits.ts). */
  writeStallMs?: number;
  /** Bounds of SPDY sessions (tests pass smaller ones). */
  spdyLimits?: Partial<SpdyLimits>;
  /** Port-forward connections at once per session and in the daemon (default: src/limits.ts). */
  portForwardsPerSession?: number;
  portForwardsPerDaemon?: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 4 * 60 * 60 * 1000;

export const HEADER_PROTOCOL_VERSION = 'X-Stream-Protocol-Version';
export const HEADER_ACCEPTED_PROTOCOL_VERSIONS = 'X-Accepted-Stream-Protocol-Versions';

const PATH_RE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/;

/** Writes a plain-text HTTP error on a raw (not yet upgraded) socket and closes it. */
function rejectUpgrade(socket: Duplex, code: number, text: string, extra: Record<string, string> = {}): void {
  const body = Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'utf8');
  const lines = [
    `HTTP/1.1 ${code} ${http.STATUS_CODES[code] ?? 'Error'}`,
    'Content-Type: text/plain; charset=utf-8',
    'X-Content-Type-Options: nosniff',
    `Content-Length: ${body.length}`,
    'Connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]));
  const t = setTimeout(() => socket.destroy(), 2000);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

/** All values of a possibly repeated, possibly comma-joined request header. */
function headerList(req: http.IncomingMessage, name: string): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].toLowerCase() !== name.toLowerCase()) continue;
    for (const v of raw[i + 1].split(',')) if (v.trim()) out.push(v.trim());
  }
  return out;
}

/** The first of the client's protocols that we support (the client's preference wins, as in httpstream). */
function negotiate(client: string[], server: readonly string[]): string | undefined {
  return client.find((p) => server.includes(p));
}

/** A valid Sec-WebSocket-Key is base64 of 16 bytes. */
function isValidKey(key: string | undefined): key is string {
  return typeof key === 'string' && Buffer.from(key, 'base64').length === 16;
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

export class StreamingServer {
  private readonly opts: StreamingServerOptions;
  private readonly tokens: TokenCache<Pending>;
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();
  private baseUrl: string | undefined;
  private readonly sessions: Record<StreamKind, number> = { exec: 0, attach: 0, portforward: 0 };
  /** Made with the first session (the protocols are loaded then). */
  private portForwardBudget?: ConnectionBudget;
  private webSockets?: WebSocketAcceptor;

  constructor(opts: StreamingServerOptions) {
    this.opts = opts;
    this.tokens = new TokenCache<Pending>(opts.tokenTtlSeconds * 1000);
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => this.onRequest(req, res);
    this.server = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, onRequest) : http.createServer(onRequest);
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** `extra` carries what has no config key (timeouts), or overrides (tls, for tests). */
  static fromConfig(
    config: BerthConfig,
    backends: StreamingBackends,
    logger: Logger,
    extra: Partial<Pick<StreamingServerOptions, 'tls' | 'idleTimeoutMs' | 'streamCreationTimeoutMs'>> = {},
  ): StreamingServer {
    const tls = readTlsPair('streaming', config.streaming.tls_cert_file, config.streaming.tls_key_file);
    return new StreamingServer({
      address: config.streaming.address,
      port: config.streaming.port,
      tokenTtlSeconds: config.streaming.token_ttl_seconds,
      backends,
      logger: logger.child({ component: 'streaming' }),
      ...(tls ? { tls } : {}),
      ...extra,
    });
  }

  /** Listens; resolves once bound. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.address, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.baseUrl = `${this.opts.tls ? 'https' : 'http'}://${hostForUrl(this.opts.address)}:${addr.port}`;
    this.opts.logger.info('streaming server listening', { url: this.baseUrl });
  }

  /** Stops listening and cuts every open session (their processes are then killed by the backends). */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** http(s)://address:port, once started. */
  get url(): string {
    if (!this.baseUrl) throw failedPrecondition('the streaming server is not running');
    return this.baseUrl;
  }

  /** Open exec/attach/port-forward connections. */
  get activeSessions(): number {
    return this.sessions.exec + this.sessions.attach + this.sessions.portforward;
  }

  /** Open connections by kind (for berth_streaming_sessions). */
  sessionsByKind(): Record<StreamKind, number> {
    return { ...this.sessions };
  }

  /** Tokens issued but not yet used (expired ones are swept lazily). */
  get pendingTokens(): number {
    return this.tokens.size;
  }

  getExecUrl(req: ExecRequest__Output): string {
    return this.issue({
      kind: 'exec',
      req: {
        kind: 'exec',
        containerId: req.containerId,
        cmd: [...req.cmd],
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
      },
    });
  }

  getAttachUrl(req: AttachRequest__Output): string {
    return this.issue({
      kind: 'attach',
      req: {
        kind: 'attach',
        containerId: req.containerId,
        cmd: [],
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
      },
    });
  }

  getPortForwardUrl(req: PortForwardRequest__Output): string {
    return this.issue({ kind: 'portforward', req: { podSandboxId: req.podSandboxId, ports: [...req.port] } });
  }

  private issue(p: Pending): string {
    const base = this.url;
    return `${base}/${p.kind}/${this.tokens.insert(p)}`;
  }

  /** Resolves the path to a pending request; undefined (after answering 404) if there is none. */
  private take(url: string | undefined): Pending | 'no-route' | undefined {
    const path = (url ?? '').split('?')[0];
    const m = PATH_RE.exec(path);
    if (!m) return 'no-route';
    const pending = this.tokens.consume(m[2]);
    if (!pending || pending.kind !== m[1]) return undefined;
    return pending;
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const text = (code: number, body: string): void => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      res.end(`${body}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'POST') return text(405, 'method not allowed');
    const pending = this.take(req.url);
    if (pending === 'no-route') return text(404, '404 page not found');
    if (!pending) return text(404, 'streaming token unknown, expired or already used; request a new URL');
    // The token is spent, as in the kubelet: a URL is good for one attempt.
    text(400, `bad request: ${pending.kind} needs a connection upgrade to SPDY/3.1 or websocket`);
  }

  private get idleTimeoutMs(): number {
    return this.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    if ('setNoDelay' in socket) {
      const tcp = socket as Socket;
      // Interactive sessions: keystrokes must not wait for Nagle.
      tcp.setNoDelay(true);
      tcp.setTimeout(this.idleTimeoutMs, () => {
        this.opts.logger.debug('closing idle streaming connection');
        tcp.destroy();
      });
    }
    if (req.method !== 'GET' && req.method !== 'POST') return rejectUpgrade(socket, 405, 'method not allowed');
    const pending = this.take(req.url);
    if (pending === 'no-route') return rejectUpgrade(socket, 404, '404 page not found');
    if (!pending) return rejectUpgrade(socket, 404, 'streaming token unknown, expired or already used; request a new URL');
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (head.length) socket.unshift(head);
    if (upgrade !== 'websocket' && upgrade !== 'spdy/3.1') {
      return rejectUpgrade(socket, 400, `unable to upgrade: unsupported protocol "${req.headers.upgrade ?? ''}"; use SPDY/3.1 or websocket`);
    }
    protocols().then(
      (p) => (upgrade === 'websocket' ? this.upgradeWebSocket(p, req, socket, pending) : this.upgradeSpdy(p, req, socket, pending)),
      (err: unknown) => rejectUpgrade(socket, 500, `streaming protocols unavailable: ${errorMessage(err)}`),
    );
  }

  private upgradeSpdy(p: Protocols, req: http.IncomingMessage, socket: Duplex, pending: Pending): void {
    const server: readonly string[] =
      pending.kind === 'portforward' ? p.portforward.SPDY_PORTFORWARD_PROTOCOLS : p.remotecommand.SPDY_REMOTECOMMAND_PROTOCOLS;
    const client = headerList(req, HEADER_PROTOCOL_VERSION);
    if (client.length === 0) return rejectUpgrade(socket, 400, `unable to upgrade: ${HEADER_PROTOCOL_VERSION} is required`);
    const protocol = negotiate(client, server);
    if (!protocol) {
      return rejectUpgrade(
        socket,
        403,
        `unable to upgrade: unable to negotiate protocol: client supports [${client.join(' ')}], server accepts [${server.join(' ')}]`,
        { [HEADER_ACCEPTED_PROTOCOL_VERSIONS]: server.join(', ') },
      );
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        `${HEADER_PROTOCOL_VERSION}: ${protocol}\r\n\r\n`,
    );
    const spdy = new p.spdy.SpdySession(socket, 'server', this.spdyLimits());
    spdy.on('protocolError', (err: Error) => this.opts.logger.debug('spdy protocol error', { error: err.message }));
    this.track(p, spdy, pending, protocol);
  }

  private upgradeWebSocket(p: Protocols, req: http.IncomingMessage, socket: Duplex, pending: Pending): void {
    const key = req.headers['sec-websocket-key'];
    if (req.headers['sec-websocket-version'] !== '13' || !isValidKey(key)) {
      return rejectUpgrade(socket, 400, 'bad websocket handshake: Sec-WebSocket-Version 13 and a Sec-WebSocket-Key are required', {
        'Sec-WebSocket-Version': '13',
      });
    }
    const server: readonly string[] =
      pending.kind === 'portforward' ? p.portforward.WS_PORTFORWARD_PROTOCOLS : p.remotecommand.WS_REMOTECOMMAND_PROTOCOLS;
    const client = headerList(req, 'Sec-WebSocket-Protocol');
    // No subprotocol at all means the original binary channel protocol.
    const protocol = client.length === 0 ? '' : negotiate(client, server);
    if (protocol === undefined) {
      return rejectUpgrade(
        socket,
        403,
        `requested protocol(s) are not supported: [${client.join(' ')}]; supports [${server.join(' ')}]`,
      );
    }
    this.webSockets ??= new p.websocket.WebSocketAcceptor();
    this.webSockets.accept(req, socket, protocol, this.opts.writeStallMs, (ws) => {
      // ws turns the socket's timeout off; the idle bound (its handler is set in onUpgrade) still holds.
      if ('setTimeout' in socket) (socket as Socket).setTimeout(this.idleTimeoutMs);
      ws.on('protocolError', (err: Error) => this.opts.logger.debug('websocket protocol error', { error: err.message }));
      if (protocol === p.portforward.WS_TUNNELED_SPDY_PORTFORWARD) {
        const spdy = new p.spdy.SpdySession(new p.websocket.WebSocketByteStream(ws), 'server', this.spdyLimits());
        spdy.on('protocolError', (err: Error) => this.opts.logger.debug('spdy protocol error', { error: err.message }));
        return this.track(p, spdy, pending, 'portforward.k8s.io');
      }
      this.track(p, ws, pending, protocol);
    });
  }

  private spdyLimits(): Partial<SpdyLimits> {
    return { ...(this.opts.writeStallMs !== undefined ? { writeStallMs: this.opts.writeStallMs } : {}), ...this.opts.spdyLimits };
  }

  /** Port-forward connections open now, across all sessions. */
  get activePortForwards(): number {
    return this.portForwardBudget?.inUse ?? 0;
  }

  private track(p: Protocols, conn: SpdySession | WebSocketConnection, pending: Pending, protocol: string): void {
    this.sessions[pending.kind]++;
    this.portForwardBudget ??= new p.portforward.ConnectionBudget(this.opts.portForwardsPerDaemon ?? Limits.portForwardsPerDaemon);
    const sessionOpts = {
      logger: this.opts.logger,
      streamCreationTimeoutMs: this.opts.streamCreationTimeoutMs ?? 30_000,
      daemonBudget: this.portForwardBudget,
      perSession: this.opts.portForwardsPerSession ?? Limits.portForwardsPerSession,
    };
    const { backends } = this.opts;
    let work: Promise<void>;
    if (conn instanceof p.spdy.SpdySession) {
      work =
        pending.kind === 'portforward'
          ? p.portforward.servePortForwardSpdy(conn, pending.req, backends.portForward, sessionOpts)
          : p.remotecommand.serveRemoteCommandSpdy(conn, protocol, pending.req, backends, sessionOpts);
    } else {
      work =
        pending.kind === 'portforward'
          ? p.portforward.servePortForwardWebSocket(conn, protocol, pending.req, backends.portForward, sessionOpts)
          : p.remotecommand.serveRemoteCommandWebSocket(conn, protocol, pending.req, backends, sessionOpts);
    }
    let counted = true;
    const done = (): void => {
      if (counted) {
        counted = false;
        this.sessions[pending.kind]--;
      }
    };
    conn.once('close', done);
    work.catch((err: unknown) => {
      this.opts.logger.warn('streaming session failed', { error: errorMessage(err) });
      conn.destroy();
    });
  }
}
