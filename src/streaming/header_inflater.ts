// The peer's SPDY header blocks: one zlib stream for the whole session,
// primed with the SPDY/3 dictionary, each block ended by a Z_SYNC_FLUSH.
//
// Node has no synchronous API for a zlib stream that lives on between calls,
// and its asynchronous one costs a trip through the libuv thread pool per
// block (~0.2 ms, over 1 ms when the pool is busy), which a client that opens
// its streams one round trip at a time pays on every stream. So while the
// session's header traffic is small — an exec's or attach's always is — each
// block is inflated synchronously by inflating the whole stream so far again
// (a few tens of bytes per block, microseconds) and taking the new output.
// Past a small budget, re-inflating would grow with the session, so the
// blocks so far are replayed into one persistent (asynchronous) inflater,
// which takes every later block.
import * as zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy_dictionary';
import { Limits } from '../limits';

/** Compressed header bytes of a session inflated synchronously before switching to the persistent inflater. */
export const SYNC_INFLATE_INPUT_BYTES = 8 * 1024;
/** ...and inflated bytes: a re-inflation costs this much at most besides the new block. */
export const SYNC_INFLATE_OUTPUT_BYTES = 32 * 1024;

function limitError(limit: number): Error {
  return new Error(`header block inflates past the ${limit}-byte limit`);
}

/**
 * Inflates header blocks in frame order; a block inflating past `limit`
 * bytes fails, and so does every later one. decompress() calls must not
 * overlap (the session waits for each before the next frame).
 */
export class HeaderDecompressor {
  private failure: Error | undefined;
  /** Every block so far while inflating synchronously; undefined once switched. */
  private history: Buffer[] | undefined = [];
  private historyBytes = 0;
  /** Inflated bytes of the blocks in `history`. */
  private produced = 0;
  private stream: PersistentInflater | undefined;

  constructor(private readonly limit: number = Limits.spdyHeaderBlockBytes) {}

  /** How many blocks went through the synchronous path (for tests). */
  syncBlocks = 0;

  decompress(block: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const history = this.history;
    if (history && this.historyBytes + block.length <= SYNC_INFLATE_INPUT_BYTES && this.produced <= SYNC_INFLATE_OUTPUT_BYTES) {
      try {
        return Promise.resolve(this.inflateSync(history, block));
      } catch (err) {
        this.failure = err instanceof RangeError ? limitError(this.limit) : (err as Error);
        return Promise.reject(this.failure);
      }
    }
    if (!this.stream) {
      this.stream = new PersistentInflater(this.limit);
      // The stream so far, whose output the caller already had.
      if (history?.length) this.stream.replay(Buffer.concat(history));
      this.history = undefined;
    }
    return this.stream.decompress(block).catch((err: Error) => {
      this.failure = err;
      throw err;
    });
  }

  private inflateSync(history: Buffer[], block: Buffer): Buffer {
    const all = zlib.inflateSync(Buffer.concat([...history, block]), {
      dictionary: SPDY3_DICTIONARY,
      // The stream is unfinished: hand out what the blocks so far hold.
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      // Throws a RangeError once past the limit, without inflating the rest.
      maxOutputLength: this.produced + this.limit + 1,
    });
    const out = all.subarray(this.produced);
    if (out.length > this.limit) throw limitError(this.limit);
    history.push(block);
    this.historyBytes += block.length;
    this.produced = all.length;
    this.syncBlocks++;
    return out;
  }

  close(): void {
    this.history = undefined;
    this.stream?.close();
  }
}

/**
 * One zlib inflate context fed block by block. Output is consumed as it is
 * produced (a paused inflater would never call back from flush, wedging the
 * session) and counted: a block inflating past `limit` bytes fails at once,
 * without inflating the rest.
 */
class PersistentInflater {
  private readonly inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  private failure: Error | undefined;
  private current: { parts: Buffer[]; bytes: number; reject: (err: Error) => void } | undefined;
  /** Settles once the replayed blocks (output already handed out, so discarded) went through. */
  private replayed: Promise<void> = Promise.resolve();

  constructor(private readonly limit: number) {
    this.inflate.on('error', (err: Error) => {
      this.failure ??= err;
      this.current?.reject(err);
    });
    this.inflate.on('data', (c: Buffer) => {
      const cur = this.current;
      if (!cur) return;
      cur.bytes += c.length;
      if (cur.bytes > this.limit) {
        this.failure = limitError(this.limit);
        this.inflate.destroy();
        cur.reject(this.failure);
        return;
      }
      cur.parts.push(c);
    });
  }

  replay(blocks: Buffer): void {
    this.inflate.write(blocks);
    this.replayed = new Promise((r) => this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
  }

  async decompress(block: Buffer): Promise<Buffer> {
    await this.replayed;
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      let settled = false;
      const cur = {
        parts: [] as Buffer[],
        bytes: 0,
        reject: (err: Error) => {
          if (settled) return;
          settled = true;
          this.current = undefined;
          reject(err);
        },
      };
      this.current = cur;
      this.inflate.write(block);
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (settled) return;
        settled = true;
        this.current = undefined;
        if (this.failure) return reject(this.failure);
        resolve(Buffer.concat(cur.parts, cur.bytes));
      });
    });
  }

  close(): void {
    this.inflate.destroy();
  }
}
