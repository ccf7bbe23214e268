// An output stream handed to a session before the client has opened the
// stream it stands for, so the process can start while the client is still
// opening its streams. Until attach(), a write is held unacknowledged: the
// writer sees backpressure once highWaterMark bytes wait (pipe() pauses its
// source), so nothing is buffered beyond that bound.
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

/** Bytes held for a stream the client has not opened yet before the writer is told to wait. */
export const DEFERRED_OUTPUT_BYTES = 64 * 1024;

export class DeferredWritable extends Writable {
  private target: Writable | null = null;
  private onAttach: (() => void) | null = null;

  constructor(highWaterMark = DEFERRED_OUTPUT_BYTES) {
    super({ highWaterMark });
  }

  /** The client's stream: held and later writes go to it, with its backpressure. */
  attach(target: Writable): void {
    if (this.target) throw new Error('deferred stream attached twice');
    this.target = target;
    const run = this.onAttach;
    this.onAttach = null;
    run?.();
  }

  private whenAttached(fn: (target: Writable) => void): void {
    if (this.target) fn(this.target);
    else this.onAttach = () => fn(this.target as Writable);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.whenAttached((target) => {
      // The client reset or left: what it would have read is dropped.
      if (target.destroyed || target.writableEnded) return callback();
      if (target.write(chunk)) return callback();
      const done = (): void => {
        target.off('drain', done);
        target.off('close', done);
        callback();
      };
      target.on('drain', done);
      target.on('close', done);
    });
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.whenAttached((target) => {
      if (!target.destroyed && !target.writableEnded) target.end();
      finished(target, { readable: false }).then(
        () => callback(),
        () => callback(),
      );
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.onAttach = null;
    callback(error);
  }
}
