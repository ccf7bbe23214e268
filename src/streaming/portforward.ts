// Port forwarding, as the kubelet serves it. Over SPDY ("portforward.k8s.io")
// the client opens, per TCP connection, an error stream and a data stream
// sharing a requestID and naming the port; any number at once. Over a
// WebSocket each port requested in the CRI call gets two channels (data 2i,
// error 2i+1) whose first message is the port, 16-bit little-endian.
import { setMaxListeners } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';
import type { Logger } from '../log/logger';
import { errorMessage } from '../errors';
import type { PortForwardBackend } from './backend';
import { RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, type SpdySession, type SpdyStream } from './spdy';
import { codecFor, WebSocketChannels, type ChannelMode } from './ws_channels';
import type { WebSocketConnection } from './websocket';

export const SPDY_PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'] as const;
/** SPDY tunnelled through WebSocket binary messages, as client-go speaks it since Kubernetes 1.30. */
export const WS_TUNNELED_SPDY_PORTFORWARD = 'SPDY/3.1+portforward.k8s.io';
export const WS_PORTFORWARD_PROTOCOLS = [
  WS_TUNNELED_SPDY_PORTFORWARD,
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
] as const;

export interface PortForwardRequestInfo {
  podSandboxId: string;
  ports: number[];
}

export interface PortForwardOptions {
  logger: Logger;
  streamCreationTimeoutMs: number;
  /** Connections open at once in the whole daemon (shared by every session). */
  daemonBudget: ConnectionBudget;
  /** Connections open at once in one session. */
  perSession: number;
}

/**
 * Counts port-forward connections against a cap: each costs a relay process
 * in the pod's netns and two sockets, so neither one session nor all of them
 * together may open them without end.
 */
export class ConnectionBudget {
  private used = 0;
  constructor(readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  tryTake(): boolean {
    if (this.used >= this.max) return false;
    this.used++;
    return true;
  }

  give(): void {
    if (this.used > 0) this.used--;
  }
}

/** Takes one connection from the session's and the daemon's budgets, or says which is exhausted. */
function takeConnection(session: ConnectionBudget, daemon: ConnectionBudget): string | undefined {
  if (!session.tryTake()) return `too many port-forward connections in this session (limit ${session.max})`;
  if (!daemon.tryTake()) {
    session.give();
    return `too many port-forward connections on this node (limit ${daemon.max})`;
  }
  return undefined;
}

function parsePort(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * Copies between the client side (data in/out) and the pod connection until
 * both directions have ended. Resolves with an error message or undefined.
 */
async function forward(
  backend: PortForwardBackend,
  podSandboxId: string,
  port: number,
  fromClient: Readable,
  toClient: Writable,
  signal: AbortSignal,
): Promise<string | undefined> {
  let conn: Duplex;
  try {
    conn = await backend.portForward(podSandboxId, port, signal);
  } catch (err) {
    return errorMessage(err);
  }
  // Done when the pod side has closed (its bytes flushed to the client): the
  // client learns the end from the data stream's FIN and the error stream's
  // EOF, and kubectl waits for the latter before closing its local socket.
  return new Promise((resolve) => {
    let failure: string | undefined;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', settle);
      fromClient.unpipe(conn);
      fromClient.resume();
      if (!conn.destroyed) conn.destroy();
      resolve(failure);
    };
    signal.addEventListener('abort', settle);
    conn.on('error', (err: Error) => {
      if (!settled) failure ??= err.message;
      settle();
    });
    // client -> pod; the client's FIN half-closes the pod connection.
    fromClient.pipe(conn);
    fromClient.once('close', () => {
      if (!fromClient.readableEnded) settle();
    });
    // pod -> client; the pod closing ends the client's data stream.
    conn.pipe(toClient);
    conn.once('end', () => {
      toClient.once('finish', settle);
      toClient.once('close', settle);
      if (toClient.writableFinished || toClient.destroyed) settle();
    });
  });
}

/** Serves a SPDY port-forward session until the client closes it. */
export function servePortForwardSpdy(
  spdy: SpdySession,
  req: PortForwardRequestInfo,
  backend: PortForwardBackend,
  opts: PortForwardOptions,
): Promise<void> {
  const abort = new AbortController();
  // Every forwarded connection of the session listens on this one signal.
  setMaxListeners(0, abort.signal);
  interface Pair {
    data?: SpdyStream;
    error?: SpdyStream;
    timer: NodeJS.Timeout;
    /** Gives the pair's connection back to the budgets, once. */
    release: () => void;
  }
  const budget = new ConnectionBudget(opts.perSession);
  const pairs = new Map<string, Pair>();
  const describe = (port: number, msg: string): string =>
    `error forwarding port ${port} to pod ${req.podSandboxId}: ${msg}`;

  const start = (pair: Pair): void => {
    const data = pair.data as SpdyStream;
    const error = pair.error as SpdyStream;
    error.resume();
    const port = parsePort(data.header('port'));
    if (port === undefined) {
      error.end(`invalid port header ${JSON.stringify(data.header('port') ?? '')}`);
      data.end();
      pair.release();
      return;
    }
    void forward(backend, req.podSandboxId, port, data, data, abort.signal).then((failure) => {
      pair.release();
      if (failure !== undefined) {
        opts.logger.debug('port-forward failed', { pod: req.podSandboxId, port, error: failure });
        if (!error.writableEnded) error.write(describe(port, failure));
      }
      if (!data.writableEnded) data.end();
      if (!error.writableEnded) error.end();
    });
  };

  spdy.on('stream', (stream: SpdyStream) => {
    stream.reply();
    const type = stream.header('streamtype');
    let id = stream.header('requestid');
    if (id === undefined) {
      // Clients older than the requestID header pair data with the error stream opened just before.
      id = String(type === 'data' ? stream.id - 2 : stream.id);
    }
    if (type !== 'data' && type !== 'error') {
      stream.reset(RST_PROTOCOL_ERROR);
      return;
    }
    let pair = pairs.get(id);
    if (!pair) {
      // A connection is counted from its first stream: pending pairs cost memory and a timer too.
      const refused = takeConnection(budget, opts.daemonBudget);
      if (refused !== undefined) {
        opts.logger.debug('port-forward connection refused', { pod: req.podSandboxId, reason: refused });
        if (type === 'error') stream.end(refused);
        else stream.reset(RST_REFUSED_STREAM);
        return;
      }
      const key = id;
      let released = false;
      pair = {
        timer: setTimeout(() => {
          const p = pairs.get(key);
          pairs.delete(key);
          if (!p) return;
          p.release();
          if (p.error) p.error.end('timed out waiting for streams');
          p.data?.reset();
        }, opts.streamCreationTimeoutMs),
        release: () => {
          if (released) return;
          released = true;
          budget.give();
          opts.daemonBudget.give();
        },
      };
      pairs.set(id, pair);
    }
    if (pair[type]) {
      stream.reset(RST_PROTOCOL_ERROR);
      return;
    }
    pair[type] = stream;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(id);
      start(pair);
    }
  });

  return new Promise((resolve) => {
    spdy.once('close', () => {
      abort.abort();
      for (const p of pairs.values()) {
        clearTimeout(p.timer);
        p.release();
      }
      pairs.clear();
      resolve();
    });
  });
}

/** Serves a WebSocket port-forward: one connection per port named in the CRI request. */
export async function servePortForwardWebSocket(
  ws: WebSocketConnection,
  protocol: string,
  req: PortForwardRequestInfo,
  backend: PortForwardBackend,
  opts: PortForwardOptions,
): Promise<void> {
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  ws.once('close', () => abort.abort());
  const modes: ChannelMode[] = req.ports.flatMap((): ChannelMode[] => ['readwrite', 'write']);
  const channels = new WebSocketChannels(ws, codecFor(protocol), modes);
  const budget = new ConnectionBudget(opts.perSession);
  const work = req.ports.map(async (port, i) => {
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port);
    channels.writeRaw(2 * i, prefix);
    channels.writeRaw(2 * i + 1, prefix);
    const data = channels.readers[2 * i] as Readable;
    const out = channels.writers[2 * i] as Writable;
    const err = channels.writers[2 * i + 1] as Writable;
    const refused = takeConnection(budget, opts.daemonBudget);
    if (refused !== undefined) {
      err.write(`error forwarding port ${port} to pod ${req.podSandboxId}: ${refused}`);
      return;
    }
    let failure: string | undefined;
    try {
      failure = await forward(backend, req.podSandboxId, port, data, out, abort.signal);
    } finally {
      budget.give();
      opts.daemonBudget.give();
    }
    if (failure !== undefined && !ws.closed) {
      opts.logger.debug('port-forward failed', { pod: req.podSandboxId, port, error: failure });
      err.write(`error forwarding port ${port} to pod ${req.podSandboxId}: ${failure}`);
    }
  });
  await Promise.all(work);
  ws.close();
}
