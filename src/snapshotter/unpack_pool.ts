// Where layers are unpacked: a small pool of worker threads (unpack_worker.ts),
// so that decompression, the diffID's sha256, tar parsing and the file writes
// of several layers run on other cores while berthd's event loop stays free
// for RPCs; or, with no workers, on the main thread (the unpacker yields
// every 5 ms there).
//
// The main thread reads the layer's (compressed) stream and posts copies of its
// chunks; at most WINDOW_BYTES are posted and not yet taken by the unpack, and
// the stream is paused meanwhile, so a layer in flight holds a fixed amount of
// memory whatever its size. A worker unpacks any number of layers at once,
// interleaved (its gunzip runs on libuv's thread pool meanwhile). A job settles only once its worker has stopped
// touching the layer's directory (finished, failed, or exited), so the caller
// may remove the directory then.
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { BerthError, errnoCode, errorMessage, internal, type ErrorKind } from '../errors';
import { unpackLayerStream, type UnpackLog, type UnpackResult } from './unpacker';
import { trimMalloc } from '../util/malloc_trim';

export type ToUnpackWorker =
  | { t: 'start'; id: number; root: string; mediaType: string }
  | { t: 'data'; id: number; chunk: Uint8Array }
  | { t: 'end'; id: number }
  | { t: 'abort'; id: number; message: string; code?: string };

export type FromUnpackWorker =
  | { t: 'ack'; id: number; bytes: number }
  | { t: 'done'; id: number; result: UnpackResult }
  | { t: 'fail'; id: number; kind?: ErrorKind; message: string; code?: string }
  | { t: 'log'; message: string; meta: Record<string, unknown> };

/** Compressed bytes posted to a worker and not yet taken by its unpack. */
const WINDOW_BYTES = 1024 * 1024;
/** Bytes per message to a worker. */
const BATCH_BYTES = 256 * 1024;
/**
 * An idle worker is stopped after this long: each holds a V8 heap, its modules
 * and a malloc arena of its own (about 13 MiB of berthd's Pss, measured), while
 * starting one takes about 25 ms. A second is long enough to carry a worker
 * from one layer to the next and from one pull to the next (the kubelet pulls
 * one image after another), short enough that an idle berthd holds none.
 */
const DEFAULT_IDLE_MS = 1000;
/** Each worker's V8 heap: the unpack keeps only bounded state, so more is a bug. */
const WORKER_HEAP_MB = 128;

export interface UnpackPoolOptions {
  /** Worker threads at most; 0 unpacks on the main thread. */
  workers: number;
  log: UnpackLog;
  /** An idle worker exits after this long (default DEFAULT_IDLE_MS). */
  idleMs?: number;
}

class UnpackWorker {
  readonly thread: Worker;
  /** Resolves when the thread has exited. */
  readonly exited: Promise<number>;
  exitCode?: number;
  /** Told to stop (idle, or the pool closing): it takes no more layers, though it has not exited yet. */
  stopping = false;
  idleTimer?: NodeJS.Timeout;
  /** The jobs running on this worker, by id: each gets its messages, and hears of the thread's exit. */
  readonly jobs = new Map<number, { onMessage: (m: FromUnpackWorker) => void; onExit: (why: string) => void }>();
  private lastError?: string;

  constructor(log: UnpackLog) {
    this.thread = new Worker(path.join(__dirname, 'unpack_worker.js'), {
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      stdout: false,
      stderr: false,
    });
    // An idle worker must not keep berthd (or a test) alive.
    this.thread.unref();
    this.thread.on('message', (m: FromUnpackWorker) => {
      if (m.t === 'log') log.debug(m.message, m.meta);
      else this.jobs.get(m.id)?.onMessage(m);
    });
    this.thread.on('error', (err) => (this.lastError = errorMessage(err)));
    this.exited = new Promise((resolve) =>
      this.thread.once('exit', (code) => {
        this.exitCode = code;
        for (const job of [...this.jobs.values()]) job.onExit(this.lastError ?? `exit code ${code}`);
        resolve(code);
      }),
    );
  }

  post(m: ToUnpackWorker, transfer?: ArrayBuffer[]): void {
    this.thread.postMessage(m, transfer);
  }
}

export class UnpackPool {
  private readonly workers = new Set<UnpackWorker>();
  private nextId = 1;

  constructor(private readonly opts: UnpackPoolOptions) {}

  /** Unpacks the layer stream `input` (of `mediaType`) into the empty directory `root`. */
  async unpack(root: string, mediaType: string, input: Readable): Promise<UnpackResult> {
    if (this.opts.workers <= 0) return unpackLayerStream(root, mediaType, input, this.opts.log);
    return this.runOn(this.pick(), root, mediaType, input);
  }

  /**
   * Stops every worker now (berthd's shutdown): a layer being unpacked fails,
   * as it would if its worker had crashed. A later unpack starts a fresh worker.
   */
  async close(): Promise<void> {
    for (const w of this.workers) this.stop(w);
    await Promise.all([...this.workers].map((w) => w.exited));
  }

  /** Worker threads alive now. */
  get size(): number {
    return this.workers.size;
  }

  /** An idle worker, else a new one while under the limit, else the least busy. */
  private pick(): UnpackWorker {
    let best: UnpackWorker | undefined;
    for (const w of this.workers) if (w.exitCode === undefined && !w.stopping && (best === undefined || w.jobs.size < best.jobs.size)) best = w;
    if (best !== undefined && (best.jobs.size === 0 || this.workers.size >= this.opts.workers)) return best;
    const fresh = new UnpackWorker(this.opts.log);
    this.workers.add(fresh);
    void fresh.exited.then(() => {
      this.workers.delete(fresh);
      // The thread's isolate and buffers were freed into malloc's heaps, which keep them resident: give them back.
      if (this.workers.size === 0) trimMalloc();
    });
    return fresh;
  }

  private jobEnded(w: UnpackWorker, id: number): void {
    w.jobs.delete(id);
    if (w.jobs.size > 0 || w.exitCode !== undefined) return;
    clearTimeout(w.idleTimer);
    w.idleTimer = setTimeout(() => {
      if (w.jobs.size === 0) this.stop(w);
    }, this.opts.idleMs ?? DEFAULT_IDLE_MS);
    w.idleTimer.unref();
  }

  private stop(w: UnpackWorker): void {
    w.stopping = true;
    void w.thread.terminate();
  }

  /** One layer on worker `w`: streams `input` to it with a bounded window and waits for its verdict. */
  private runOn(w: UnpackWorker, root: string, mediaType: string, input: Readable): Promise<UnpackResult> {
    const id = this.nextId++;
    return new Promise<UnpackResult>((resolve, reject) => {
      let inFlight = 0;
      let inputError: Error | undefined;
      let settled = false;
      const finish = (err: Error | undefined, result?: UnpackResult): void => {
        if (settled) return;
        settled = true;
        this.jobEnded(w, id);
        input.off('data', onData);
        input.off('end', onEnd);
        input.off('error', onError);
        // A layer given up on (or not read to its end): stop its producer.
        if (err !== undefined && !input.destroyed) input.destroy();
        // The input's own typed error (a digest mismatch, a stall) wins over the unpack's account of it.
        if (err !== undefined) reject(inputError instanceof BerthError ? inputError : err);
        else resolve(result as UnpackResult);
      };
      // Chunks are copied into batches (the caller may still hold a chunk), and each batch is
      // moved, not cloned, to the worker: a few hundred messages and gunzip calls per 100 MB
      // instead of one per 64 KiB network read.
      let batch: Buffer | undefined;
      let filled = 0;
      let flushQueued = false;
      const flush = (): void => {
        if (batch === undefined || filled === 0) return;
        const full = batch;
        // allocUnsafeSlow: a buffer of its own (never the shared pool), so moving it takes nothing else along.
        w.post({ t: 'data', id, chunk: full.subarray(0, filled) }, [full.buffer as ArrayBuffer]);
        inFlight += filled;
        batch = undefined;
        filled = 0;
        if (inFlight >= WINDOW_BYTES) input.pause();
      };
      const onData = (chunk: Buffer): void => {
        for (let off = 0; off < chunk.length; ) {
          batch ??= Buffer.allocUnsafeSlow(BATCH_BYTES);
          const n = chunk.copy(batch, filled, off);
          filled += n;
          off += n;
          if (filled === BATCH_BYTES) flush();
        }
        // A partial batch goes once the reads of this turn of the event loop are done: the next may be a while.
        if (filled > 0 && !flushQueued) {
          flushQueued = true;
          setImmediate(() => {
            flushQueued = false;
            if (!settled) flush();
          });
        }
      };
      const onEnd = (): void => {
        flush();
        w.post({ t: 'end', id });
      };
      const onError = (err: Error): void => {
        inputError ??= err;
        w.post({ t: 'abort', id, message: errorMessage(err), code: errnoCode(err) });
      };
      const onMessage = (m: FromUnpackWorker): void => {
        if (m.t === 'log') return;
        if (m.t === 'ack') {
          inFlight -= m.bytes;
          if (inFlight < WINDOW_BYTES / 2 && input.isPaused() && !input.readableEnded) input.resume();
        } else if (m.t === 'done') finish(undefined, m.result);
        else finish(m.kind !== undefined ? new BerthError(m.kind, m.message) : internal(`unpacking: ${m.message}`));
      };
      // The thread is gone, so nothing more is written to `root`.
      const onExit = (why: string): void => finish(internal(`the unpack worker stopped mid-layer (${why})`));
      clearTimeout(w.idleTimer);
      w.jobs.set(id, { onMessage, onExit });
      w.post({ t: 'start', id, root, mediaType });
      input.on('data', onData);
      input.on('end', onEnd);
      input.on('error', onError);
    });
  }
}
