// Turns a layer blob stream into its uncompressed tar stream, chosen by the
// layer's media type. gzip uses node:zlib; zstd (Node 20 has no zstd) pipes
// through the `zstd` CLI from Debian's zstd package when it is installed.
import { spawn } from 'node:child_process';
import { PassThrough, Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { invalidArgument, internal } from '../errors';
import { compressionOf } from '../oci/media_types';
import { findExecutable } from './exec';

export function toReadable(stream: NodeJS.ReadableStream): Readable {
  return stream instanceof Readable ? stream : new Readable().wrap(stream);
}

/**
 * The uncompressed stream. Errors of the input or the decompressor surface as
 * errors of the returned stream (so a consumer's `for await` throws).
 */
export function decompress(mediaType: string, input: Readable): Readable {
  const compression = compressionOf(mediaType);
  if (compression === 'none') return input;
  if (compression === 'gzip') {
    // Bigger chunks than the 16 KiB default (fewer hops per MiB: 512 KiB unpacks a 16 MiB
    // layer ~30% faster than 128 KiB), and up to 1 MiB inflated ahead so decompression
    // overlaps with our file writes; memory stays bounded.
    // (Node's zlib passes stream options through; @types/node doesn't list them.)
    const options: zlib.ZlibOptions & { readableHighWaterMark: number } = {
      chunkSize: 512 * 1024,
      readableHighWaterMark: 1024 * 1024,
    };
    const gunzip = zlib.createGunzip(options);
    gunzip.on('error', () => undefined); // as for zstd below: reported to the consumer, never uncaught
    pipeline(input, gunzip, () => {
      // errors are delivered to the gunzip stream's consumer by pipeline's destroy
    });
    return gunzip;
  }
  const zstd = findExecutable('zstd');
  if (zstd === undefined) {
    throw invalidArgument(
      `layer media type ${mediaType} needs zstd, which this node cannot decompress (install Debian's zstd package)`,
    );
  }
  // --long=31 lets us decode frames written with long-distance matching (window up to 2 GiB).
  const child = spawn(zstd, ['-d', '-c', '-q', '--long=31'], { stdio: ['pipe', 'pipe', 'pipe'] });
  // The output ends only once zstd has exited successfully: a failure must not look like a short stream.
  const out = new PassThrough({ highWaterMark: 128 * 1024 });
  // zstd may fail before our consumer starts reading: without a listener the
  // 'error' event would be an uncaught exception and take berthd down. The
  // consumer still sees the error (the stream is destroyed with it).
  out.on('error', () => undefined);
  child.stdout.pipe(out, { end: false });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const fail = (err: Error): void => {
    if (child.exitCode === null) child.kill('SIGKILL');
    out.destroy(err);
  };
  child.stdin.on('error', () => {
    // EPIPE when zstd exits early; the close handler reports why.
  });
  input.on('error', (err) => fail(invalidArgument(`reading layer: ${err.message}`, err)));
  input.pipe(child.stdin);
  child.on('error', (err) => fail(internal(`running zstd: ${err.message}`, err)));
  child.on('close', (code, signal) => {
    if (out.destroyed) return;
    if (code === 0) out.end();
    else fail(invalidArgument(`zstd decompression failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
  });
  // If our consumer gives up, stop zstd and the input.
  out.on('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    input.unpipe(child.stdin);
    if (!input.readableEnded) input.destroy();
  });
  return out;
}
