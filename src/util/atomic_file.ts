// Crash-safe file replacement, shared by every store that keeps state on
// disk: write a temp file, fsync it, rename it over the target, fsync the
// directory. After a crash the target is the old or the new version, never a
// torn one; a left-over temp file is the caller's to sweep at start.
//
// The directory fsyncs are group-committed (src/util/group_commit.ts): writes
// finishing while a directory's fsync is under way share the next one, so ten
// records written at once into one directory cost two directory fsyncs, not
// ten. Each write still resolves only once an fsync begun after its rename has
// finished.
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { nativeDurableFs, nodeDurableFs, type DurableFs } from './durable_fs';
import { GroupCommit } from './group_commit';
import { lazy } from './lazy';

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

/** Atomic writes through one set of file system steps, with the directory fsyncs group-committed. */
export class AtomicWriter {
  /** The directories being synced (dropped again when idle, so one per pod directory does not pile up). */
  private readonly dirSyncs = new Map<string, GroupCommit>();

  constructor(private readonly steps: DurableFs) {}

  /**
   * Replaces `file` with `data`. With `keepOld`, resolves true when the old
   * file's inode was kept at `opts.tmp` (an existing tmp is reused: no inode
   * is made or freed), false when it was replaced the plain way.
   */
  async write(file: string, data: string | Buffer, opts: AtomicWriteOptions & { keepOld?: boolean } = {}): Promise<boolean> {
    const tmp = opts.tmp ?? `${file}.tmp-${randomBytes(4).toString('hex')}`;
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const replace = (syncDir?: string): Promise<boolean> =>
      this.steps.replaceFile(tmp, file, bytes, opts.mode ?? 0o600, opts.syncFile ?? true, opts.keepOld ?? false, syncDir);
    if (!(opts.syncDir ?? true)) return replace();
    // Alone in its directory, the write fsyncs it in the same job (one round
    // trip); writes arriving meanwhile share the next directory fsync.
    const dir = path.dirname(file);
    const alone = this.groupOf(dir).runIfIdle(() => replace(dir));
    if (alone !== undefined) return alone;
    const kept = await replace();
    await this.syncDir(dir);
    return kept;
  }

  /** Resolves once an fsync of `dir` begun after this call has finished: every rename or unlink in it made before is durable. */
  syncDir(dir: string): Promise<void> {
    return this.groupOf(dir).request();
  }

  private groupOf(dir: string): GroupCommit {
    let group = this.dirSyncs.get(dir);
    if (group === undefined) {
      const made: GroupCommit = new GroupCommit(
        () => this.steps.syncDir(dir),
        () => {
          if (this.dirSyncs.get(dir) === made) this.dirSyncs.delete(dir);
        },
      );
      this.dirSyncs.set(dir, made);
      group = made;
    }
    return group;
  }

  /** How many directories have an fsync under way or wanted (for tests: none are kept once idle). */
  get dirsInUse(): number {
    return this.dirSyncs.size;
  }
}

/** berthd's writer: through berth-durable.node when it is built, else node's fs. */
const defaultWriter = lazy(() => new AtomicWriter(nativeDurableFs() ?? nodeDurableFs));

/** fsyncs a directory, making a rename or unlink in it durable. */
export function fsyncDir(dir: string): Promise<void> {
  return defaultWriter().syncDir(dir);
}

export async function writeFileAtomic(file: string, data: string | Buffer, opts: AtomicWriteOptions = {}): Promise<void> {
  await defaultWriter().write(file, data, opts);
}

/**
 * writeFileAtomic through `spare` (a file of the caller's own, or a name for
 * one), swapping the old `file` into `spare` where the file system can:
 * resolves true when it did (the spare then holds the old inode, for the next
 * write), false when `spare` was renamed over `file` (it is gone).
 */
export function writeFileAtomicKeepingOld(file: string, data: string | Buffer, spare: string): Promise<boolean> {
  return defaultWriter().write(file, data, { tmp: spare, keepOld: true });
}
