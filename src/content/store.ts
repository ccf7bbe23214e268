// The content store: blobs (manifests, configs, layers) by digest at
// <root>/blobs/sha256/<hex>. Every byte is verified while it streams in (size
// and sha256); a blob is written to <root>/ingest/, fsynced and renamed into
// place only once verified, so a crash never leaves a complete-looking blob.
// Concurrent ingests of one digest in this process share a single download.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { BerthError, errnoCode, errorMessage, internal, invalidArgument, isAborted, notFound } from '../errors';
import { digestOfHex, hexOf, isSha256Hex } from '../oci/digest';
import { fsyncDir } from '../util/atomic_file';
import { SingleFlight } from '../util/single_flight';

export interface BlobDescriptor {
  digest: string;
  size: number;
}

export interface IngestResult {
  /** Whether `sink` (if given) received the bytes. False when the blob was already present or another ingest was in flight. */
  teed: boolean;
}

/** Verifies size and sha256 of what passes through; copies each chunk to `sink` with backpressure. */
class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private received = 0;

  constructor(
    private readonly expected: BlobDescriptor,
    private readonly sink?: Writable,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.expected.size) {
      cb(invalidArgument(`blob ${this.expected.digest}: received more than the expected ${this.expected.size} bytes`));
      return;
    }
    this.hash.update(chunk);
    this.push(chunk);
    const sink = this.sink;
    if (!sink || sink.destroyed || sink.writableEnded) return cb();
    if (sink.write(chunk)) return cb();
    // Wait for the sink to drain; a sink that dies is dropped (its consumer reports its own error).
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      sink.off('error', done);
      cb();
    };
    sink.on('drain', done);
    sink.on('close', done);
    sink.on('error', done);
  }

  override _flush(cb: TransformCallback): void {
    if (this.received !== this.expected.size) {
      cb(invalidArgument(`blob ${this.expected.digest}: size mismatch, got ${this.received} bytes, expected ${this.expected.size}`));
      return;
    }
    const got = digestOfHex(this.hash.digest('hex'));
    if (got !== this.expected.digest) {
      cb(invalidArgument(`blob ${this.expected.digest}: content does not match its digest (got ${got}); the registry or a proxy served corrupt data`));
      return;
    }
    cb();
  }
}

export class ContentStore {
  private readonly blobsDir: string;
  private readonly ingestDir: string;
  /** Ingests in flight by digest: concurrent ingests of one blob share one download. */
  private readonly ingests = new SingleFlight<void>();

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
  }

  /** Creates the directories and discards ingests a crash left behind. */
  async init(): Promise<void> {
    await fs.promises.mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
    await fs.promises.rm(this.ingestDir, { recursive: true, force: true });
    await fs.promises.mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
  }

  path(digest: string): string {
    return path.join(this.blobsDir, hexOf(digest));
  }

  has(digest: string): boolean {
    return fs.existsSync(this.path(digest));
  }

  /** Size of a stored blob, or undefined. */
  size(digest: string): number | undefined {
    try {
      return fs.statSync(this.path(digest)).size;
    } catch {
      return undefined;
    }
  }

  /** Whether an ingest of `digest` is running now (GC must leave it alone). */
  isIngesting(digest: string): boolean {
    return this.ingests.has(digest);
  }

  /**
   * Stores the blob `desc` from the stream `open()` returns, verifying it.
   * With `sink`, every byte is also written to it as it passes (with
   * backpressure), and it is ended when the blob is verified - or destroyed
   * with the error if not. The sink is left untouched when the result says
   * teed: false.
   */
  async ingest(desc: BlobDescriptor, open: () => Readable, sink?: Writable): Promise<IngestResult> {
    hexOf(desc.digest);
    const running = this.ingests.get(desc.digest);
    if (running) {
      try {
        await running;
      } catch (err) {
        // The download we joined was cancelled by its own pull: ours goes on with a download of its own.
        if (isAborted(err)) return this.ingest(desc, open, sink);
        throw err;
      }
      return { teed: false };
    }
    if (this.has(desc.digest)) return { teed: false };
    await this.ingests.run(desc.digest, () => this.doIngest(desc, open, sink));
    return { teed: sink !== undefined };
  }

  /** Stores a small blob held in memory (a manifest or config already verified by the caller or here). */
  async put(desc: BlobDescriptor, data: Buffer): Promise<void> {
    await this.ingest(desc, () => Readable.from([data]));
  }

  /**
   * Stores a blob whose digest is not known in advance (an archive's
   * legacy layer.tar): the digest is computed from the bytes as they are
   * written, so the result is as trustworthy as a verified ingest.
   */
  async ingestUnnamed(source: Readable): Promise<BlobDescriptor> {
    const tmp = path.join(this.ingestDir, `unnamed-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const hasher = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      await pipeline(source, hasher, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
      const desc: BlobDescriptor = { digest: digestOfHex(hash.digest('hex')), size };
      if (this.has(desc.digest)) {
        await fs.promises.rm(tmp, { force: true });
        return desc;
      }
      await this.publish(tmp, desc.digest);
      return desc;
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err instanceof BerthError ? err : internal(`storing a blob: ${errorMessage(err)}`, err);
    }
  }

  private async doIngest(desc: BlobDescriptor, open: () => Readable, sink?: Writable): Promise<void> {
    const tmp = path.join(this.ingestDir, `${hexOf(desc.digest)}-${randomBytes(6).toString('hex')}`);
    let file: fs.WriteStream | undefined;
    try {
      // Opened before the pipeline: a write stream opening the file itself may
      // still do so after a failed pipeline returned and the temp was removed.
      // A 1 MiB write buffer (default 16 KiB) lets the network keep flowing while a chunk is written.
      file = fs.createWriteStream(tmp, { fd: await fs.promises.open(tmp, 'wx', 0o600), highWaterMark: 1024 * 1024 });
      await pipeline(open(), new VerifyingStream(desc, sink), file);
      await this.publish(tmp, desc.digest);
      sink?.end();
    } catch (err) {
      file?.destroy(); // closes the file when open() threw before the pipeline began
      await fs.promises.rm(tmp, { force: true });
      if (sink && !sink.destroyed) {
        // The sink's reader learns of the failure; an unread sink must not crash the process.
        sink.on('error', () => undefined);
        sink.destroy(err instanceof Error ? err : new Error(String(err)));
      }
      throw err instanceof BerthError ? err : internal(`storing blob ${desc.digest}: ${errorMessage(err)}`, err);
    }
  }

  /** Makes a fully written temp file the blob: fsync, rename into place, fsync the directory. */
  private async publish(tmp: string, digest: string): Promise<void> {
    const fh = await fs.promises.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, this.path(digest));
    await fsyncDir(this.blobsDir);
  }

  /** A stored blob's bytes. */
  openRead(digest: string): Readable {
    if (!this.has(digest)) throw notFound(`blob ${digest} is not in the content store`);
    // 1 MiB reads instead of the 64 KiB default: a layer applied from here costs far fewer stream hops.
    return fs.createReadStream(this.path(digest), { highWaterMark: 1024 * 1024 });
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await fs.promises.readFile(this.path(digest));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw notFound(`blob ${digest} is not in the content store`);
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await fs.promises.rm(this.path(digest), { force: true });
  }

  /** All stored digests. */
  async list(): Promise<string[]> {
    const names = await fs.promises.readdir(this.blobsDir);
    return names.filter(isSha256Hex).map(digestOfHex);
  }
}
