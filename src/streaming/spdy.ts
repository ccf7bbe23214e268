// SPDY/3.1 framing and sessions, as spoken by Kubernetes' httpstream/spdy
// (moby/spdystream underneath) for exec, attach and port-forward.
//
// What is implemented: SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING,
// GOAWAY, HEADERS, WINDOW_UPDATE and DATA frames; header blocks through one
// zlib context per direction primed with the SPDY/3 dictionary and flushed
// with Z_SYNC_FLUSH. Flow control: we announce consumption with WINDOW_UPDATE
// so spec-following peers never stall, but we do not hold our own sends to the
// peer's window, because spdystream (the Kubernetes client) never sends
// WINDOW_UPDATE and would deadlock after 64 KiB. Backpressure instead comes
// from TCP: a stream's write completes only once the socket has drained.
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { SPDY3_DICTIONARY } from './spdy_dictionary';
import { endSocket } from './end_socket';
import { ChunkQueue, SocketFlow } from './flow';
import { HeaderDecompressor } from './header_inflater';
import { Limits } from '../limits';

export const SPDY_VERSION = 3;

export const enum FrameType {
  SynStream = 1,
  SynReply = 2,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  Headers = 8,
  WindowUpdate = 9,
}

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

export const RST_PROTOCOL_ERROR = 1;
export const RST_INVALID_STREAM = 2;
export const RST_REFUSED_STREAM = 3;
export const RST_CANCEL = 5;

/** Largest DATA payload we send in one frame; keeps streams interleaved fairly. */
const MAX_DATA_FRAME = 32 * 1024;
/** Largest frame we accept; SPDY allows 16 MiB but no k8s peer comes near. */
const MAX_FRAME_LENGTH = 1 << 24;
/** Default SPDY/3.1 window; we top it up once half is consumed. */
const WINDOW = 64 * 1024;

export type SpdyHeaders = Map<string, string>;

/**
 * Our side of header compression. The peer only needs a valid zlib stream
 * primed with the SPDY dictionary; we emit it as stored (uncompressed) deflate
 * blocks, which keeps framing synchronous and in order. Each header block is
 * followed by an empty stored block, the marker Z_SYNC_FLUSH writes: Go's
 * inflater only hands out buffered output when it reaches one.
 */
export class HeaderCompressor {
  private started = false;

  compress(block: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.started) {
      // CMF 0x78 (deflate, 32 KiB window), FLG 0xbb (FDICT set, valid FCHECK), DICTID = adler32(dictionary).
      parts.push(Buffer.from([0x78, 0xbb]), adler32BE(SPDY3_DICTIONARY));
      this.started = true;
    }
    for (let off = 0; off < block.length; off += 0xffff) parts.push(storedBlock(block.subarray(off, off + 0xffff)));
    parts.push(storedBlock(Buffer.alloc(0)));
    return Buffer.concat(parts);
  }
}

/** A non-final stored deflate block; byte-aligned because every block we write is. */
function storedBlock(data: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0; // BFINAL=0, BTYPE=00, padding to the byte boundary
  head.writeUInt16LE(data.length, 1);
  head.writeUInt16LE(~data.length & 0xffff, 3);
  return Buffer.concat([head, data]);
}

function adler32BE(data: Buffer): Buffer {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE(((b << 16) | a) >>> 0);
  return out;
}

/** Header block (uncompressed) in SPDY/3 form: 32-bit count, then length-prefixed names and values. */
export function encodeHeaderBlock(headers: Iterable<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  let count = 0;
  for (const [name, value] of headers) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(n.length);
    const vlen = Buffer.alloc(4);
    vlen.writeUInt32BE(v.length);
    parts.push(len, n, vlen, v);
    count++;
  }
  const head = Buffer.alloc(4);
  head.writeUInt32BE(count);
  return Buffer.concat([head, ...parts]);
}

export function decodeHeaderBlock(buf: Buffer): SpdyHeaders {
  const out: SpdyHeaders = new Map();
  if (buf.length < 4) throw new Error('header block too short');
  const count = buf.readUInt32BE(0);
  let off = 4;
  const take = (): string => {
    if (off + 4 > buf.length) throw new Error('truncated header block');
    const len = buf.readUInt32BE(off);
    off += 4;
    if (off + len > buf.length) throw new Error('truncated header block');
    const s = buf.toString('utf8', off, off + len);
    off += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = take().toLowerCase();
    const value = take();
    // Multiple values travel NUL-separated; callers here want the first.
    const prev = out.get(name);
    out.set(name, prev === undefined ? value : `${prev}\0${value}`);
  }
  return out;
}

/** The first value of a header (SPDY joins repeated values with NUL). */
export function headerValue(headers: SpdyHeaders, name: string): string | undefined {
  const v = headers.get(name.toLowerCase());
  return v === undefined ? undefined : v.split('\0')[0];
}

function controlFrame(type: FrameType, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([head, payload]);
}

function dataFrame(streamId: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return payload.length ? Buffer.concat([head, payload]) : head;
}

/** One SPDY stream: readable side = data from the peer, writable side = data to the peer. */
export class SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: SpdyHeaders;
  replyHeaders: SpdyHeaders | undefined;
  private readonly session: SpdySession;
  /** We sent FIN (or RST). */
  localClosed = false;
  /** The peer sent FIN (or RST). */
  remoteClosed = false;
  private replied: boolean;
  private unacked = 0;

  constructor(session: SpdySession, id: number, headers: SpdyHeaders, replied: boolean) {
    super({ allowHalfOpen: true });
    this.session = session;
    this.id = id;
    this.headers = headers;
    this.replied = replied;
    // An abandoned stream must never crash the daemon with an unhandled 'error'.
    this.on('error', () => undefined);
  }

  header(name: string): string | undefined {
    return headerValue(this.headers, name);
  }

  /** Answers a peer-initiated stream (SYN_REPLY). Idempotent. */
  reply(headers: Iterable<[string, string]> = [], fin = false): void {
    if (this.replied || this.destroyed) return;
    this.replied = true;
    if (fin) this.localClosed = true;
    this.session.sendSynReply(this.id, headers, fin);
  }

  /** Aborts the stream (RST_STREAM CANCEL) unless it already ended both ways. */
  reset(status = RST_CANCEL): void {
    if (!(this.localClosed && this.remoteClosed)) this.session.sendRst(this.id, status);
    this.localClosed = true;
    this.remoteClosed = true;
    this.destroy();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.localClosed) return cb(new Error(`spdy stream ${this.id} is closed for writing`));
    this.reply();
    let last = true;
    for (let off = 0; off < chunk.length; off += MAX_DATA_FRAME) {
      last = this.session.sendFrame(dataFrame(this.id, 0, chunk.subarray(off, off + MAX_DATA_FRAME)));
    }
    if (last) cb();
    else this.session.whenDrained(cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.localClosed && !this.session.closed) {
      this.reply();
      this.localClosed = true;
      this.session.sendFrame(dataFrame(this.id, FLAG_FIN, Buffer.alloc(0)));
    }
    this.localClosed = true;
    this.session.maybeForget(this);
    cb();
  }

  override _read(): void {
    this.session.resumeReading(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!(this.localClosed && this.remoteClosed) && !this.session.closed) this.session.sendRst(this.id, RST_CANCEL);
    this.localClosed = true;
    this.remoteClosed = true;
    this.session.forget(this);
    cb(err);
  }

  /** Data from the peer. Returns false when our reader is full. */
  deliver(data: Buffer, fin: boolean): void {
    if (this.remoteClosed) return;
    if (data.length) {
      this.unacked += data.length;
      if (this.unacked >= WINDOW / 2) {
        this.session.sendWindowUpdate(this.id, this.unacked);
        this.unacked = 0;
      }
      if (!this.push(data)) this.session.pauseReading(this);
    }
    if (fin) {
      this.remoteClosed = true;
      this.push(null);
      this.session.maybeForget(this);
    }
  }

  /** The peer reset the stream or the connection went away. */
  abortRemote(): void {
    this.remoteClosed = true;
    this.localClosed = true;
    this.destroy();
  }
}

export type SpdyRole = 'server' | 'client';

/** Bounds of one session (defaults from src/limits.ts); tests pass smaller ones. */
export interface SpdyLimits {
  /** Bytes a header block may inflate to. */
  headerBlockBytes: number;
  /** How long our output may stay queued (the peer not reading) before the session is dropped. */
  writeStallMs: number;
  /** Streams open at once; more are refused with RST_STREAM REFUSED_STREAM. */
  streams: number;
}

export const DEFAULT_SPDY_LIMITS: SpdyLimits = {
  headerBlockBytes: Limits.spdyHeaderBlockBytes,
  writeStallMs: Limits.streamingWriteStallSeconds * 1000,
  streams: Limits.spdyStreamsPerSession,
};

/** Frames parsed but not yet handled (waiting on header decompression) before we stop reading the socket. */
const INBOX_HIGH = 64;

/**
 * A SPDY/3.1 session over a byte stream. Emits 'stream' (SpdyStream) for
 * peer-initiated streams — the receiver must reply() — and 'close' once the
 * connection is gone.
 */
export class SpdySession extends EventEmitter {
  private readonly socket: Duplex;
  private readonly role: SpdyRole;
  private readonly streams = new Map<number, SpdyStream>();
  private readonly pendingReplies = new Map<number, (s: SpdyStream | Error) => void>();
  private readonly deflate = new HeaderCompressor();
  private readonly inflate: HeaderDecompressor;
  private inbox: Buffer[] = [];
  private pumping = false;
  private readonly flow: SocketFlow;
  private readonly limits: SpdyLimits;
  private readonly pings = new Map<number, () => void>();
  private readonly received = new ChunkQueue();
  /** Bytes the frame being received needs before it can be parsed. */
  private need = 8;
  private nextStreamId: number;
  private nextPingId: number;
  private sessionUnacked = 0;
  private drainWaiters: Array<() => void> = [];
  closed = false;
  goAwayReceived = false;

  constructor(socket: Duplex, role: SpdyRole, limits: Partial<SpdyLimits> = {}) {
    super();
    this.socket = socket;
    this.role = role;
    this.limits = { ...DEFAULT_SPDY_LIMITS, ...limits };
    this.inflate = new HeaderDecompressor(this.limits.headerBlockBytes);
    this.flow = new SocketFlow(socket, this.limits.writeStallMs, () => {
      this.emit('protocolError', new Error(`the peer read nothing for ${this.limits.writeStallMs} ms; dropping the session`));
      this.destroy();
    }, role === 'server');
    this.nextStreamId = role === 'client' ? 1 : 2;
    this.nextPingId = role === 'client' ? 1 : 2;
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('drain', () => this.flushDrainWaiters());
    // Frames already received are still handled (in order) before the session ends.
    socket.on('error', () => this.teardownAfterInbox());
    socket.on('close', () => this.teardownAfterInbox());
    // The peer finished sending: flush what we still have, then the socket closes.
    socket.on('end', () => socket.end());
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Client side: opens a stream and resolves once the peer replied. */
  openStream(headers: Iterable<[string, string]>, fin = false): Promise<SpdyStream> {
    if (this.closed) return Promise.reject(new Error('spdy session closed'));
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new SpdyStream(this, id, new Map([...headers].map(([k, v]) => [k.toLowerCase(), v])), true);
    if (fin) stream.localClosed = true;
    this.streams.set(id, stream);
    const payload = Buffer.concat([Buffer.alloc(10), this.compress(encodeHeaderBlock(headers))]);
    payload.writeUInt32BE(id, 0);
    this.sendFrame(controlFrame(FrameType.SynStream, fin ? FLAG_FIN : 0, payload));
    return new Promise((resolve, reject) => {
      this.pendingReplies.set(id, (r) => (r instanceof Error ? reject(r) : resolve(r)));
    });
  }

  /** Sends a PING and resolves on its echo. */
  ping(): Promise<void> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(id);
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('spdy session closed'));
      this.pings.set(id, resolve);
      this.sendFrame(controlFrame(FrameType.Ping, 0, payload));
    });
  }

  /** Says no more streams will be accepted, then half-closes the connection once written. */
  close(): void {
    if (this.closed) return;
    const lastId = Math.max(0, ...[...this.streams.keys()].filter((id) => this.isPeerStream(id)));
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(lastId, 0);
    payload.writeUInt32BE(0, 4);
    this.sendFrame(controlFrame(FrameType.GoAway, 0, payload));
    endSocket(this.socket);
  }

  destroy(): void {
    this.socket.destroy();
    this.teardown();
  }

  // ---- used by SpdyStream -------------------------------------------------

  /** Every frame goes out here, so replies the peer provokes obey backpressure like data (see SocketFlow). */
  sendFrame(frame: Buffer): boolean {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return true;
    return this.flow.write(frame);
  }

  whenDrained(cb: () => void): void {
    if (this.closed) return cb();
    this.drainWaiters.push(cb);
  }

  sendSynReply(id: number, headers: Iterable<[string, string]>, fin: boolean): void {
    const payload = Buffer.concat([Buffer.alloc(4), this.compress(encodeHeaderBlock(headers))]);
    payload.writeUInt32BE(id, 0);
    this.sendFrame(controlFrame(FrameType.SynReply, fin ? FLAG_FIN : 0, payload));
  }

  sendRst(id: number, status: number): void {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(id, 0);
    payload.writeUInt32BE(status, 4);
    this.sendFrame(controlFrame(FrameType.RstStream, 0, payload));
  }

  sendWindowUpdate(id: number, delta: number): void {
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(id, 0);
    payload.writeUInt32BE(delta & 0x7fffffff, 4);
    this.sendFrame(controlFrame(FrameType.WindowUpdate, 0, payload));
  }

  pauseReading(stream: SpdyStream): void {
    this.flow.hold(stream);
  }

  resumeReading(stream: SpdyStream): void {
    this.flow.release(stream);
  }

  maybeForget(stream: SpdyStream): void {
    if (stream.localClosed && stream.remoteClosed) this.forget(stream);
  }

  forget(stream: SpdyStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.resumeReading(stream);
  }

  // ---- internals ----------------------------------------------------------

  private isPeerStream(id: number): boolean {
    return this.role === 'server' ? id % 2 === 1 : id % 2 === 0;
  }

  private compress(block: Buffer): Buffer {
    return this.deflate.compress(block);
  }

  private async decompress(block: Buffer): Promise<SpdyHeaders> {
    return decodeHeaderBlock(await this.inflate.decompress(block));
  }

  private flushDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.received.push(chunk);
    // Wait, without copying, until the frame being received is complete.
    if (this.received.size < this.need) return;
    let buf = this.received.take();
    this.need = 8;
    while (buf.length >= 8) {
      const length = buf.readUInt32BE(4) & 0xffffff;
      if (length > MAX_FRAME_LENGTH) {
        this.emit('protocolError', new Error('frame too large'));
        return this.destroy();
      }
      if (buf.length < 8 + length) {
        this.need = 8 + length;
        break;
      }
      this.inbox.push(buf.subarray(0, 8 + length));
      buf = buf.subarray(8 + length);
    }
    this.received.restore(buf);
    // Frames wait here only behind a header block being inflated: stop reading rather than queue without end.
    if (this.inbox.length > INBOX_HIGH) this.flow.hold(this.inbox);
    void this.pump();
  }

  /** Handles frames strictly in order; header blocks decompress asynchronously. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.inbox.length && !this.closed) {
        const frame = this.inbox.shift() as Buffer;
        const pending = this.handleFrame(frame);
        if (pending) await pending;
        if (this.inbox.length <= INBOX_HIGH / 2) this.flow.release(this.inbox);
      }
    } catch (err) {
      this.emit('protocolError', err);
      this.destroy();
    } finally {
      this.pumping = false;
    }
    if (this.socketGone) this.teardown();
  }

  private socketGone = false;
  private teardownAfterInbox(): void {
    this.socketGone = true;
    if (!this.pumping) this.teardown();
  }

  private handleFrame(frame: Buffer): Promise<void> | undefined {
    const flags = frame[4];
    const payload = frame.subarray(8);
    if ((frame[0] & 0x80) === 0) {
      const id = frame.readUInt32BE(0) & 0x7fffffff;
      this.sessionUnacked += payload.length;
      if (this.sessionUnacked >= WINDOW / 2) {
        this.sendWindowUpdate(0, this.sessionUnacked);
        this.sessionUnacked = 0;
      }
      const stream = this.streams.get(id);
      if (!stream) {
        // Data for a stream we never opened or already forgot.
        if (!(flags & FLAG_FIN) || payload.length) this.sendRst(id, RST_INVALID_STREAM);
        return;
      }
      stream.deliver(Buffer.from(payload), (flags & FLAG_FIN) !== 0);
      return;
    }
    const version = frame.readUInt16BE(0) & 0x7fff;
    const type = frame.readUInt16BE(2);
    if (version !== SPDY_VERSION) throw new Error(`unsupported SPDY version ${version}`);
    switch (type) {
      case FrameType.SynStream:
        return this.decompress(payload.subarray(10)).then((headers) => {
          const id = payload.readUInt32BE(0) & 0x7fffffff;
          if (this.closed) return;
          if (!this.isPeerStream(id) || this.streams.has(id) || this.goAwaySent()) {
            this.sendRst(id, RST_PROTOCOL_ERROR);
            return;
          }
          if (this.streams.size >= this.limits.streams) {
            this.sendRst(id, RST_REFUSED_STREAM);
            return;
          }
          const stream = new SpdyStream(this, id, headers, false);
          this.streams.set(id, stream);
          if (flags & FLAG_UNIDIRECTIONAL) stream.localClosed = true;
          if (flags & FLAG_FIN) stream.deliver(Buffer.alloc(0), true);
          this.emit('stream', stream);
        });
      case FrameType.SynReply:
        return this.decompress(payload.subarray(4)).then((headers) => {
          const id = payload.readUInt32BE(0) & 0x7fffffff;
          const stream = this.streams.get(id);
          const waiter = this.pendingReplies.get(id);
          this.pendingReplies.delete(id);
          if (stream) {
            stream.replyHeaders = headers;
            waiter?.(stream);
            if (flags & FLAG_FIN) stream.deliver(Buffer.alloc(0), true);
          }
        });
      case FrameType.Headers:
        // Headers after the fact: nothing in the k8s protocols uses them, but
        // the compression context must still consume the block.
        return this.decompress(payload.subarray(4)).then(() => {
          const stream = this.streams.get(payload.readUInt32BE(0) & 0x7fffffff);
          if (stream && flags & FLAG_FIN) stream.deliver(Buffer.alloc(0), true);
        });
      case FrameType.RstStream: {
        const id = payload.readUInt32BE(0) & 0x7fffffff;
        const stream = this.streams.get(id);
        const waiter = this.pendingReplies.get(id);
        this.pendingReplies.delete(id);
        waiter?.(new Error(`stream ${id} reset by peer (status ${payload.readUInt32BE(4)})`));
        if (stream) {
          this.streams.delete(id);
          stream.abortRemote();
        }
        return;
      }
      case FrameType.Ping: {
        const id = payload.readUInt32BE(0);
        const waiter = this.pings.get(id);
        if (waiter) {
          this.pings.delete(id);
          waiter();
        } else {
          this.sendFrame(controlFrame(FrameType.Ping, 0, payload));
        }
        return;
      }
      case FrameType.GoAway:
        this.goAwayReceived = true;
        this.emit('goaway');
        return;
      case FrameType.Settings:
      case FrameType.WindowUpdate:
        return;
      default:
        // Unknown control frames must be ignored (SPDY/3 section 2.2.1).
        return;
    }
  }

  private goAwaySentFlag = false;
  private goAwaySent(): boolean {
    return this.goAwaySentFlag || this.socket.writableEnded;
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    this.goAwaySentFlag = true;
    for (const [, waiter] of this.pendingReplies) waiter(new Error('spdy session closed'));
    this.pendingReplies.clear();
    for (const stream of [...this.streams.values()]) stream.abortRemote();
    this.streams.clear();
    this.pings.clear();
    this.flushDrainWaiters();
    this.flow.dispose();
    this.received.clear();
    this.inbox = [];
    this.inflate.close();
    this.socket.destroy();
    this.emit('close');
  }
}
