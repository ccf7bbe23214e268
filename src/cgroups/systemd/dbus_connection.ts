// One D-Bus connection over a unix socket: EXTERNAL authentication, method
// calls matched to their replies by serial (each with a timeout), and
// signals handed to one listener. Messages are bounded: one larger than
// MAX_MESSAGE_BYTES is skipped unread (systemd's replies to berth are a few
// hundred bytes; its signals a few KiB).
import * as net from 'node:net';
import { WireReader, WireWriter, type DbusValue, Variant } from './dbus_wire';

export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** How long one wake-up ping waits before the next is sent. */
const PING_WAIT_MS = 200;
/** The authentication exchange is a few short lines. */
const MAX_AUTH_BYTES = 4096;

const enum MessageType {
  MethodCall = 1,
  MethodReturn = 2,
  Error = 3,
  Signal = 4,
}

const enum HeaderField {
  Path = 1,
  Interface = 2,
  Member = 3,
  ErrorName = 4,
  ReplySerial = 5,
  Destination = 6,
  Sender = 7,
  Signature = 8,
}

/** A reply (or signal) as received. */
export interface DbusMessage {
  type: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  signature: string;
  body: DbusValue[];
}

export interface MethodCall {
  destination?: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: DbusValue[];
}

/** An error reply: `name` is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit...). */
export class DbusError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  resolve(m: DbusMessage): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class DbusConnection {
  private serial = 0;
  private readonly pending = new Map<number, Pending>();
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of an oversized message still to be skipped. */
  private skipping = 0;
  private closedError: Error | undefined;
  /** Messages skipped for size, for the logs. */
  skipped = 0;
  onSignal: (m: DbusMessage) => void = () => undefined;
  onClose: (err: Error) => void = () => undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('error', (err) => this.close(err));
    socket.on('close', () => this.close(new Error('D-Bus connection closed')));
  }

  /** Connects and authenticates (EXTERNAL, as this process's uid); fails after `timeoutMs`. */
  static connect(socketPath: string, timeoutMs: number): Promise<DbusConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      let auth = '';
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`D-Bus ${socketPath}: no answer within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (err) => fail(new Error(`D-Bus ${socketPath}: ${err.message}`)));
      socket.once('connect', () => {
        const uid = Buffer.from(String(process.getuid?.() ?? 0)).toString('hex');
        socket.write(`\0AUTH EXTERNAL ${uid}\r\n`);
      });
      const onAuth = (d: Buffer): void => {
        auth += d.toString('latin1');
        if (auth.length > MAX_AUTH_BYTES) return fail(new Error(`D-Bus ${socketPath}: authentication reply too long`));
        const end = auth.indexOf('\r\n');
        if (end < 0) return;
        const line = auth.slice(0, end);
        if (!line.startsWith('OK ')) return fail(new Error(`D-Bus ${socketPath}: authentication refused: ${line.slice(0, 200)}`));
        clearTimeout(timer);
        socket.off('data', onAuth);
        socket.removeAllListeners('error');
        socket.write('BEGIN\r\n');
        const conn = new DbusConnection(socket);
        // Nothing follows OK before BEGIN, but keep whatever came.
        const rest = Buffer.from(auth.slice(end + 2), 'latin1');
        if (rest.length) conn.receive(rest);
        conn.awaken(timeoutMs).then(() => resolve(conn), (err: Error) => {
          conn.close(err);
          reject(err);
        });
      };
      socket.on('data', onAuth);
    });
  }

  /**
   * Pings the peer until it answers. sd-bus can take a message that came in
   * the same read as BEGIN into its buffer and not look at it until more
   * bytes arrive (seen here with systemd 252: one connection in a few never
   * answered its first call); a ping that goes unanswered is followed by
   * another, whose bytes wake it.
   */
  async awaken(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.call({ path: '/', interface: 'org.freedesktop.DBus.Peer', member: 'Ping' }, PING_WAIT_MS);
        return;
      } catch (err) {
        if (this.closedError || Date.now() + PING_WAIT_MS > deadline) throw err;
      }
    }
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Sends a method call and resolves its reply; rejects with DbusError on an error reply. */
  call(c: MethodCall, timeoutMs: number): Promise<DbusMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    const serial = ++this.serial;
    const body = new WireWriter();
    if (c.signature) body.values(c.signature, c.body ?? []);
    const fields: DbusValue[] = [
      [HeaderField.Path, new Variant('o', c.path)],
      [HeaderField.Interface, new Variant('s', c.interface)],
      [HeaderField.Member, new Variant('s', c.member)],
    ];
    if (c.destination) fields.push([HeaderField.Destination, new Variant('s', c.destination)]);
    if (c.signature) fields.push([HeaderField.Signature, new Variant('g', c.signature)]);
    const w = new WireWriter();
    w.u8('l'.charCodeAt(0));
    w.u8(MessageType.MethodCall);
    w.u8(0);
    w.u8(1);
    w.u32(body.length);
    w.u32(serial);
    w.value('a(yv)', fields);
    w.align(8);
    w.bytes(body.toBuffer());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new Error(`D-Bus ${c.interface}.${c.member}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer });
      this.socket.write(w.toBuffer());
    });
  }

  close(err: Error = new Error('D-Bus connection closed')): void {
    if (this.closedError) return;
    this.closedError = err;
    this.socket.destroy();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.onClose(err);
  }

  private receive(d: Buffer): void {
    if (this.skipping > 0) {
      const n = Math.min(this.skipping, d.length);
      this.skipping -= n;
      d = d.subarray(n);
      if (d.length === 0) return;
    }
    this.chunks.push(d);
    this.buffered += d.length;
    for (;;) {
      if (this.buffered < 16) return;
      const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [buf];
      const le = buf[0] === 0x6c; // 'l'
      if (!le && buf[0] !== 0x42) return this.close(new Error(`D-Bus: bad byte-order mark 0x${buf[0].toString(16)}`));
      const bodyLength = le ? buf.readUInt32LE(4) : buf.readUInt32BE(4);
      const fieldsLength = le ? buf.readUInt32LE(12) : buf.readUInt32BE(12);
      const total = Math.ceil((16 + fieldsLength) / 8) * 8 + bodyLength;
      if (total > MAX_MESSAGE_BYTES) {
        this.skipped++;
        const have = Math.min(total, this.buffered);
        this.skipping = total - have;
        this.consume(buf, have);
        continue;
      }
      if (this.buffered < total) return;
      const msg = buf.subarray(0, total);
      this.consume(buf, total);
      try {
        this.dispatch(parseMessage(msg, le));
      } catch (err) {
        return this.close(new Error(`D-Bus: malformed message: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
  }

  private consume(buf: Buffer, n: number): void {
    const rest = buf.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
  }

  private dispatch(m: DbusMessage): void {
    if (m.type === MessageType.Signal) {
      this.onSignal(m);
      return;
    }
    if (m.type !== MessageType.MethodReturn && m.type !== MessageType.Error) return;
    const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
    if (!p || m.replySerial === undefined) return;
    this.pending.delete(m.replySerial);
    clearTimeout(p.timer);
    if (m.type === MessageType.Error) {
      const text = typeof m.body[0] === 'string' ? m.body[0] : '';
      p.reject(new DbusError(m.errorName ?? 'org.freedesktop.DBus.Error.Failed', `${m.errorName ?? 'error'}: ${text}`));
    } else {
      p.resolve(m);
    }
  }
}

/** Parses one whole message (header, fields, body). */
export function parseMessage(msg: Buffer, littleEndian: boolean): DbusMessage {
  const r = new WireReader(msg, littleEndian);
  r.u8();
  const type = r.u8();
  r.u8(); // flags
  r.u8(); // protocol version
  const bodyLength = r.u32();
  r.u32(); // serial
  const fields = r.value('a(yv)') as Array<[number, Variant]>;
  r.align(8);
  const out: DbusMessage = { type, signature: '', body: [] };
  for (const [code, v] of fields) {
    const s = typeof v.value === 'string' ? v.value : undefined;
    if (code === HeaderField.Path) out.path = s;
    else if (code === HeaderField.Interface) out.interface = s;
    else if (code === HeaderField.Member) out.member = s;
    else if (code === HeaderField.ErrorName) out.errorName = s;
    else if (code === HeaderField.ReplySerial && typeof v.value === 'number') out.replySerial = v.value;
    else if (code === HeaderField.Signature && s !== undefined) out.signature = s;
  }
  if (out.signature && bodyLength > 0) {
    // The body is aligned from its own start, which is 8-aligned in the message.
    const body = new WireReader(msg.subarray(r.offset), littleEndian);
    out.body = body.values(out.signature);
  }
  return out;
}
