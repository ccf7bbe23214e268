// The Kubernetes channel protocol over one WebSocket (apimachinery wsstream):
// every message starts with a channel number; binary protocols carry raw
// bytes after a one-byte channel, base64 protocols an ASCII digit then base64
// text. v5 adds channel 255 ("close channel N", payload [255, N]) so a client
// can signal end of stdin.
import { Readable, Writable } from 'node:stream';
import type { WebSocketConnection } from './websocket';

export const CHANNEL_CLOSE = 255;

export type ChannelMode = 'read' | 'write' | 'readwrite' | 'ignore';

export interface ChannelCodec {
  /** base64 protocols send text frames: '0'+channel then base64. */
  base64: boolean;
  /** v5: the 255 close signal is understood. */
  supportsClose: boolean;
}

/** Describes the k8s websocket subprotocols. */
export function codecFor(protocol: string): ChannelCodec {
  return {
    base64: protocol === 'base64.channel.k8s.io' || protocol === 'v4.base64.channel.k8s.io',
    supportsClose: protocol === 'v5.channel.k8s.io',
  };
}

export function encodeChannelMessage(codec: ChannelCodec, channel: number, data: Buffer): { data: Buffer; binary: boolean } {
  if (codec.base64) {
    return { data: Buffer.from(String.fromCharCode(48 + channel) + data.toString('base64'), 'latin1'), binary: false };
  }
  const out = Buffer.alloc(data.length + 1);
  out[0] = channel;
  data.copy(out, 1);
  return { data: out, binary: true };
}

/** Splits an incoming message; undefined for an empty one. */
export function decodeChannelMessage(
  codec: ChannelCodec,
  msg: Buffer,
): { channel: number; data: Buffer } | { closeChannel: number } | undefined {
  if (msg.length === 0) return undefined;
  if (codec.supportsClose && msg[0] === CHANNEL_CLOSE) {
    if (msg.length !== 2) throw new Error(`close signal must name exactly one channel, got ${msg.length - 1} bytes`);
    return { closeChannel: msg[1] };
  }
  if (codec.base64) {
    return { channel: msg[0] - 48, data: Buffer.from(msg.subarray(1).toString('latin1'), 'base64') };
  }
  return { channel: msg[0], data: msg.subarray(1) };
}

/** Writable that turns each write into one channel message, with socket backpressure. */
class ChannelWriter extends Writable {
  constructor(
    private readonly ws: WebSocketConnection,
    private readonly codec: ChannelCodec,
    private readonly channel: number,
  ) {
    super();
    this.on('error', () => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.closed) return cb();
    const m = encodeChannelMessage(this.codec, this.channel, chunk);
    if (this.ws.send(m.data, m.binary)) cb();
    else this.ws.whenDrained(() => cb());
  }
}

class ChannelReader extends Readable {
  constructor(private readonly mux: WebSocketChannels) {
    super();
    this.on('error', () => undefined);
  }

  override _read(): void {
    this.mux.resumeFor(this);
  }
}

/** The channels of one connection. readers[i]/writers[i] are null where the mode forbids. */
export class WebSocketChannels {
  readonly readers: Array<Readable | null>;
  readonly writers: Array<Writable | null>;
  private readonly paused = new Set<Readable>();

  constructor(
    readonly ws: WebSocketConnection,
    readonly codec: ChannelCodec,
    modes: ChannelMode[],
  ) {
    this.readers = modes.map((m) => (m === 'read' || m === 'readwrite' ? new ChannelReader(this) : null));
    this.writers = modes.map((m, i) => (m === 'write' || m === 'readwrite' ? new ChannelWriter(ws, codec, i) : null));
    ws.on('message', (msg: Buffer) => this.onMessage(msg));
    ws.on('close', () => {
      for (const r of this.readers) if (r && !r.readableEnded) r.push(null);
      this.paused.clear();
    });
  }

  /** Writes one message on a channel regardless of mode (the port prefix, the initial empty frame). */
  writeRaw(channel: number, data: Buffer): void {
    const m = encodeChannelMessage(this.codec, channel, data);
    this.ws.send(m.data, m.binary);
  }

  resumeFor(r: Readable): void {
    if (this.paused.delete(r) && this.paused.size === 0) this.ws.resume();
  }

  private onMessage(msg: Buffer): void {
    let decoded;
    try {
      decoded = decodeChannelMessage(this.codec, msg);
    } catch {
      this.ws.close(1002, 'bad close signal');
      return;
    }
    if (!decoded) return;
    if ('closeChannel' in decoded) {
      const r = this.readers[decoded.closeChannel];
      if (r && !r.readableEnded) r.push(null);
      return;
    }
    // Data for an unknown or write-only channel is dropped, as wsstream does.
    const r = this.readers[decoded.channel];
    if (!r || r.readableEnded || decoded.data.length === 0) return;
    if (!r.push(decoded.data)) {
      this.paused.add(r);
      this.ws.pause();
    }
  }
}
