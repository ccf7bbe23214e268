// RFC 6455 WebSocket: the opening handshake key, frame codec and a message
// connection for either side (clients mask, servers do not). Fragmented
// messages are reassembled; pings are answered; close is echoed.
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { endSocket } from './end_socket';
import { ChunkQueue, SocketFlow } from './flow';
import { Limits } from '../limits';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const EMPTY = Buffer.alloc(0);

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

export const CLOSE_NORMAL = 1000;
export const CLOSE_PROTOCOL_ERROR = 1002;
export const CLOSE_TOO_BIG = 1009;

/** Largest message we reassemble; k8s channel frames are far smaller. */
const MAX_MESSAGE = 32 * 1024 * 1024;

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** A valid Sec-WebSocket-Key is base64 of 16 bytes. */
export function isValidKey(key: string | undefined): key is string {
  return typeof key === 'string' && Buffer.from(key, 'base64').length === 16;
}

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean, fin = true): Buffer {
  const len = payload.length;
  let headLen = 2 + (mask ? 4 : 0);
  if (len >= 65536) headLen += 8;
  else if (len >= 126) headLen += 2;
  const out = Buffer.alloc(headLen + len);
  out[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  let off = 2;
  if (len >= 65536) {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    off = 10;
  } else if (len >= 126) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    off = 4;
  } else {
    out[1] = len;
  }
  if (mask) {
    out[1] |= 0x80;
    const key = randomBytes(4);
    key.copy(out, off);
    off += 4;
    for (let i = 0; i < len; i++) out[off + i] = payload[i] ^ key[i & 3];
  } else {
    payload.copy(out, off);
  }
  return out;
}

export type WebSocketRole = 'server' | 'client';

/**
 * Message-level WebSocket over an upgraded socket. Emits 'message'
 * (data: Buffer, binary: boolean) and 'close' (code, reason) once the socket is gone.
 */
export class WebSocketConnection extends EventEmitter {
  private readonly socket: Duplex;
  private readonly role: WebSocketRole;
  private readonly received = new ChunkQueue();
  /** Bytes the frame being received needs before it can be parsed. */
  private need = 2;
  private readonly flow: SocketFlow;
  private fragments: Buffer[] = [];
  private fragmentsLength = 0;
  private fragmentOpcode = 0;
  private closeSent = false;
  private drainWaiters: Array<() => void> = [];
  closed = false;
  closeCode = 0;

  /** @param writeStallMs how long output may stay queued (the peer reading nothing) before the connection is dropped. */
  constructor(socket: Duplex, role: WebSocketRole, head?: Buffer, writeStallMs = Limits.streamingWriteStallSeconds * 1000) {
    super();
    this.socket = socket;
    this.role = role;
    // Pongs and close echoes obey backpressure like data: see SocketFlow.
    this.flow = new SocketFlow(socket, writeStallMs, () => {
      this.emit('protocolError', new Error(`the peer read nothing for ${writeStallMs} ms; dropping the connection`));
      this.destroy();
    }, role === 'server');
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('drain', () => this.flushDrainWaiters());
    socket.on('error', () => this.teardown());
    socket.on('close', () => this.teardown());
    socket.on('end', () => socket.end());
    if (head && head.length) setImmediate(() => this.onData(head));
  }

  /** Sends one message; returns false when the socket buffer is full (see whenDrained). */
  send(data: Buffer, binary = true): boolean {
    return this.sendFrame(binary ? OP_BINARY : OP_TEXT, data);
  }

  whenDrained(cb: () => void): void {
    if (this.closed || this.closeSent) return cb();
    this.drainWaiters.push(cb);
  }

  ping(data: Buffer = Buffer.alloc(0)): void {
    this.sendFrame(OP_PING, data);
  }

  /** Stops reading (a reader downstream is full) until resume(). */
  pause(): void {
    this.flow.hold(this);
  }

  resume(): void {
    this.flow.release(this);
  }

  /** Starts the closing handshake; the socket is ended once the close frame is written. */
  close(code = CLOSE_NORMAL, reason = ''): void {
    if (this.closeSent || this.closed) return;
    const r = Buffer.from(reason, 'utf8').subarray(0, 123);
    const payload = Buffer.alloc(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    this.sendFrame(OP_CLOSE, payload);
    this.closeSent = true;
    this.flushDrainWaiters();
    endSocket(this.socket);
  }

  destroy(): void {
    this.socket.destroy();
    this.teardown();
  }

  private sendFrame(opcode: number, payload: Buffer): boolean {
    if (this.closed || this.closeSent || this.socket.destroyed || this.socket.writableEnded) return true;
    return this.flow.write(encodeFrame(opcode, payload, this.role === 'client'));
  }

  private flushDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private fail(code: number, reason: string): void {
    this.emit('protocolError', new Error(reason));
    this.close(code, reason);
    this.received.clear();
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.closeSent) return;
    this.received.push(chunk);
    // Wait, without copying, until the frame being received is complete.
    if (this.received.size < this.need) return;
    this.buf = this.received.take();
    this.need = 2;
    try {
      this.parseFrames();
    } finally {
      this.received.restore(this.buf);
      this.buf = EMPTY;
    }
  }

  /** The bytes being parsed (only during parseFrames). */
  private buf: Buffer = EMPTY;

  private parseFrames(): void {
    while (this.buf.length >= 2 && !this.closed && !this.closeSent) {
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return void (this.need = 4);
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return void (this.need = 10);
        const big = this.buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) return this.fail(CLOSE_TOO_BIG, 'frame too large');
        len = Number(big);
        off = 10;
      }
      if ((b0 & 0x70) !== 0) return this.fail(CLOSE_PROTOCOL_ERROR, 'reserved bits set');
      // Clients must mask, servers must not (RFC 6455 section 5.1).
      if (masked !== (this.role === 'server')) return this.fail(CLOSE_PROTOCOL_ERROR, 'wrong masking');
      const maskOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) return void (this.need = off + len);
      let payload: Buffer = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) {
        const key = this.buf.subarray(maskOff, maskOff + 4);
        for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      }
      this.buf = this.buf.subarray(off + len);
      if (opcode >= 0x8) {
        if (!fin || len > 125) return this.fail(CLOSE_PROTOCOL_ERROR, 'bad control frame');
        this.onControl(opcode, payload);
        continue;
      }
      if (opcode === OP_CONTINUATION) {
        if (!this.fragmentOpcode) return this.fail(CLOSE_PROTOCOL_ERROR, 'unexpected continuation');
      } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
        if (this.fragmentOpcode) return this.fail(CLOSE_PROTOCOL_ERROR, 'expected continuation');
        this.fragmentOpcode = opcode;
      } else {
        return this.fail(CLOSE_PROTOCOL_ERROR, `unknown opcode ${opcode}`);
      }
      this.fragmentsLength += payload.length;
      if (this.fragmentsLength > MAX_MESSAGE) return this.fail(CLOSE_TOO_BIG, 'message too large');
      this.fragments.push(payload);
      if (fin) {
        payload = this.fragments.length === 1 ? this.fragments[0] : Buffer.concat(this.fragments);
        const binary = this.fragmentOpcode === OP_BINARY;
        this.fragments = [];
        this.fragmentsLength = 0;
        this.fragmentOpcode = 0;
        this.emit('message', payload, binary);
      }
    }
  }

  private onControl(opcode: number, payload: Buffer): void {
    switch (opcode) {
      case OP_PING:
        this.sendFrame(OP_PONG, payload);
        return;
      case OP_PONG:
        this.emit('pong', payload);
        return;
      case OP_CLOSE: {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.emit('closing', this.closeCode);
        // Echo the close (RFC 6455 section 5.5.1), then the TCP connection ends.
        this.close(payload.length >= 2 ? this.closeCode : CLOSE_NORMAL);
        return;
      }
    }
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.flushDrainWaiters();
    this.flow.dispose();
    this.received.clear();
    this.socket.destroy();
    this.emit('close', this.closeCode);
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
