// Read/write flow of one upgraded streaming connection. Everything a session
// writes — data, but also the replies a peer provokes (PING echoes, RSTs,
// pongs, window updates) — goes through write(): while the socket's buffer is
// full the session stops reading its socket, so a peer that floods frames and
// never reads makes no reply pile up in berthd's heap; if the buffer stays
// full for `stallMs` (the peer is not reading at all), onStall ends the
// session. Other reasons to stop reading (a stream's reader is full, frames
// wait for header decompression) hold the socket through hold()/release().
import type { Duplex } from 'node:stream';

/** What reading is paused on: the socket itself, or a framing layer that owns its reads (`ws`). */
export interface ReadSide {
  pause(): unknown;
  resume(): unknown;
}

const OUTPUT = Symbol('output queued');

export class SocketFlow {
  private readonly holds = new Set<unknown>();
  private stallTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private corked = false;

  /**
   * @param guard stop reading while output is queued and drop a peer that
   * reads nothing. Servers only: our own client role (tests, the CLI) is the
   * peer being protected against, and two peers that both stop reading while
   * their output is queued could deadlock each other.
   */
  constructor(
    private readonly socket: Duplex,
    private readonly stallMs: number,
    private readonly onStall: () => void,
    private readonly guard = true,
    private readonly reader: ReadSide = socket,
  ) {
    socket.on('drain', () => this.drained());
  }

  /**
   * Writes `buf`; false means it was queued (the peer is behind), and reading
   * stops until 'drain'. What is written in one turn of the event loop leaves
   * in one write: each write that wakes the peer can hand it the CPU (on a
   * small machine the peer preempts us), so a session's closing frames (ends
   * of the streams, the exit status, GOAWAY) go as one.
   */
  write(buf: Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return true;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    return this.afterWrite(this.socket.write(buf));
  }

  /** For writes made on the socket by a framing layer (`ws`): false when they are queued, as write() reports. */
  noteWrite(): boolean {
    return this.afterWrite(!this.socket.writableNeedDrain);
  }

  private afterWrite(ok: boolean): boolean {
    if (!ok && this.guard && !this.disposed) {
      this.hold(OUTPUT);
      this.stallTimer ??= setTimeout(() => {
        this.stallTimer = undefined;
        if (this.socket.writableNeedDrain && !this.disposed) this.onStall();
      }, this.stallMs);
    }
    return ok;
  }

  /** Stops reading the socket until every hold is released. */
  hold(reason: unknown): void {
    if (this.holds.has(reason)) return;
    this.holds.add(reason);
    this.reader.pause();
  }

  release(reason: unknown): void {
    if (this.holds.delete(reason) && this.holds.size === 0 && !this.disposed) this.reader.resume();
  }

  dispose(): void {
    this.disposed = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private drained(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.release(OUTPUT);
  }
}

/**
 * Bytes received but not yet parsed. Chunks are kept in a list and joined
 * once enough has arrived for what the parser needs next, so a large frame
 * arriving in many small chunks is copied once, not once per chunk.
 */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  private length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  get size(): number {
    return this.length;
  }

  /** Everything queued as one buffer (joined only when there are several), leaving the queue empty. */
  take(): Buffer {
    const out = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    this.length = 0;
    return out;
  }

  /** Puts back what the parser left unconsumed. */
  restore(rest: Buffer): void {
    if (rest.length === 0) return;
    this.chunks.unshift(rest);
    this.length += rest.length;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}
