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
      await fh.sync();
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
