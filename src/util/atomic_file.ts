// Crash-safe file replacement, shared by every store that keeps state on
// disk: write a temp file, fsync it, rename it over the target, fsync the
// directory. After a crash the target is the old or the new version, never a
// torn one; a left-over temp file is the caller's to sweep at start.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file (default 0600). */
  mode?: number;
  /** Temp path; default `<file>.tmp-<random>` beside the target. */
  tmp?: string;
  /** fsync the directory after the rename (default true). */
  syncDir?: boolean;
  /**
   * fsync the file before the rename (default true). Volatile state (gone at
   * reboot) needs none: the rename alone is atomic for every reader, and only
   * a power loss, which takes that state with it, could tear the file.
   */
  syncFile?: boolean;
}

/** fsyncs a directory, making a rename or unlink in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(file: string, data: string | Buffer, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = opts.tmp ?? `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await fs.promises.open(tmp, 'w', opts.mode ?? 0o600);
    try {
      await fh.writeFile(data);
      if (opts.syncFile ?? true) await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  if (opts.syncDir ?? true) await fsyncDir(path.dirname(file));
}

/**
 * Replaces several files, each as writeFileAtomic does (temp, fsync, rename;
 * all side by side), then makes the renames durable with one fsync per
 * directory instead of one per file. A crash leaves each file old or new.
 */
export async function writeFilesAtomic(
  files: ReadonlyArray<{ file: string; data: string | Buffer }>,
  opts: Pick<AtomicWriteOptions, 'mode'> = {},
): Promise<void> {
  // Every write settles (its temp file gone on failure) before a failure is reported.
  const results = await Promise.allSettled(files.map((f) => writeFileAtomic(f.file, f.data, { mode: opts.mode, syncDir: false })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  await Promise.all([...new Set(files.map((f) => path.dirname(f.file)))].map((dir) => fsyncDir(dir)));
}
