// WebSocket connections of the streaming server. RFC 6455 framing is the `ws`
// package's: it reassembles fragments, answers pings, validates UTF-8 in text
// frames and close reasons (closing with 1007), bounds messages (1009) and
// runs the closing handshake. What streaming sessions need on top is here:
// sends that report backpressure, reading held while output is queued or a
// reader downstream is full, and a peer that reads nothing dropped after the
// stall bound (the same rules SocketFlow gives SPDY sessions).
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData, type ServerOptions } from 'ws';
import { CLOSE_GRACE_MS } from './end_socket';
import { SocketFlow } from './flow';
import { Limits } from '../limits';

export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;

/** The longest close reason RFC 6455 allows (a close frame's payload is at most 125 bytes). */
const MAX_CLOSE_REASON = 123;

const EMPTY = Buffer.alloc(0);

/** Completes WebSocket handshakes on upgrade requests of an existing HTTP(S) server. */
export class WebSocketAcceptor {
  private readonly wss: WebSocketServer;
  /** The subprotocol chosen for each handshake under way. */
  private readonly chosen = new WeakMap<IncomingMessage, string>();

  constructor() {
    // closeTimeout (how long a closing handshake may wait for the peer) is newer than @types/ws.
    const options: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: Limits.websocketMessageBytes,
      closeTimeout: CLOSE_GRACE_MS,
    };
    this.wss = new WebSocketServer(options);
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const protocol = this.chosen.get(req);
      if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    });
  }

  /**
   * Answers the handshake (101) with `protocol` ('' for none), chosen by the
   * caller from the client's offer; `ws` checks the rest of the request and
   * answers 400 itself when it is not a valid handshake.
   */
  accept(
    req: IncomingMessage,
    socket: Duplex,
    protocol: string,
    writeStallMs: number | undefined,
    onOpen: (conn: WebSocketConnection) => void,
  ): void {
    // ws reads offered subprotocols as RFC 7230 tokens, and client-go's
    // "SPDY/3.1+portforward.k8s.io" is not one: the choice is made, so ws does not see the offer.
    delete req.headers['sec-websocket-protocol'];
    if (protocol) this.chosen.set(req, protocol);
    this.wss.handleUpgrade(req, socket, EMPTY, (ws: WebSocket) => onOpen(new WebSocketConnection(ws, socket, writeStallMs)));
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

/** A reason that fits a close frame, cut on a character boundary so it stays valid UTF-8. */
function closeReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out, 'utf8') > MAX_CLOSE_REASON) out = out.slice(0, -1);
  return out;
}

/**
 * Server side of one upgraded WebSocket. Emits 'message' (data: Buffer,
 * binary: boolean), 'protocolError' (err) and 'close' (code) once the socket is gone.
 */
export class WebSocketConnection extends EventEmitter {
  private readonly flow: SocketFlow;
  private drainWaiters: Array<() => void> = [];

  /**
   * @param socket the upgraded socket `ws` frames (its 'drain' and buffer are the backpressure signal).
   * @param writeStallMs how long output may stay queued (the peer reading nothing) before the connection is dropped.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    writeStallMs = Limits.streamingWriteStallSeconds * 1000,
  ) {
    super();
    this.flow = new SocketFlow(
      socket,
      writeStallMs,
      () => {
        this.emit('protocolError', new Error(`the peer read nothing for ${writeStallMs} ms; dropping the connection`));
        this.destroy();
      },
      true,
      ws,
    );
    ws.on('message', (data: RawData, binary: boolean) => this.emit('message', toBuffer(data), binary));
    // ws has written the pong: a peer flooding pings and reading nothing is held like any other writer.
    ws.on('ping', () => this.flow.noteWrite());
    ws.on('error', (err: Error) => this.emit('protocolError', err));
    socket.on('drain', () => this.flushDrainWaiters());
    ws.on('close', (code: number) => {
      this.flow.dispose();
      this.flushDrainWaiters();
      this.emit('close', code);
    });
  }

  /** The socket is gone (both closing handshakes done, or cut). */
  get closed(): boolean {
    return this.ws.readyState === WebSocket.CLOSED;
  }

  /** Sends one message; false when it was queued behind a full socket (see whenDrained). Dropped once closing. */
  send(data: Buffer, binary = true): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return true;
    this.ws.send(data, { binary });
    return this.flow.noteWrite();
  }

  whenDrained(cb: () => void): void {
    if (this.ws.readyState !== WebSocket.OPEN || !this.socket.writableNeedDrain) return cb();
    this.drainWaiters.push(cb);
  }

  /** Stops reading (a reader downstream is full) until resume(). */
  pause(): void {
    this.flow.hold(this);
  }

  resume(): void {
    this.flow.release(this);
  }

  /** Starts the closing handshake; `ws` cuts the socket if the peer does not answer in CLOSE_GRACE_MS. */
  close(code = CLOSE_NORMAL, reason = ''): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.close(code, closeReason(reason));
    this.flushDrainWaiters();
  }

  destroy(): void {
    this.ws.terminate();
  }

  private flushDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}

/**
 * A WebSocket seen as a plain byte stream: every binary message carries the
 * next bytes. client-go tunnels SPDY port-forwarding this way
 * ("SPDY/3.1+portforward.k8s.io", KEP-4006).
 */
export class WebSocketByteStream extends Duplex {
  constructor(private readonly ws: WebSocketConnection) {
    super({ allowHalfOpen: false });
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (!binary) {
        ws.close(CLOSE_PROTOCOL_ERROR, 'binary messages only');
        return;
      }
      if (!this.push(data)) ws.pause();
    });
    ws.on('close', () => {
      this.push(null);
      this.destroy();
    });
    this.on('error', () => undefined);
  }

  override _read(): void {
    this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.send(chunk, true)) cb();
    else this.ws.whenDrained(() => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.ws.close();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.ws.closed) this.ws.destroy();
    cb(err);
  }
}
