// Spare files of one store directory: the inodes of replaced and deleted
// records, kept to be written again instead of freed. A record write goes
// through a spare and swaps the old record into it (writeFileAtomicKeepingOld),
// a delete moves the record into one, and a new record takes one; so pods
// starting and going cost no inode made or freed in steady state. That pays on
// ext4 without a journal (this machine's root): there every new inode is found
// by stepping over each inode freed in the last 30 s (find_inode_bit,
// recently_deleted, reading the inode table), and with a temp file per write
// that was about half of the kernel CPU of writing records 10 pods at a time
// (perf). The spares live in a directory beside the store's, `<dir>.spares`,
// so the store's own directory holds only records; their contents are garbage.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export class SpareFiles {
  readonly dir: string;
  private readonly free: string[] = [];
  /** False until open() has found the spare directory usable (same file system as the records). */
  private usable = false;

  /** `max` spares at most are kept; more are removed. */
  constructor(
    private readonly recordDir: string,
    private readonly max: number,
  ) {
    this.dir = `${recordDir}.spares`;
  }

  /**
   * Makes the spare directory and keeps what it holds (spares of an earlier
   * run, temp files of writes a crash cut short) up to `max`. Where it is on
   * another file system than the records (a rename cannot cross), no spares
   * are used.
   */
  open(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.free.length = 0;
    this.usable = fs.statSync(this.dir).dev === fs.statSync(this.recordDir).dev;
    for (const entry of fs.readdirSync(this.dir, { withFileTypes: true })) {
      const file = path.join(this.dir, entry.name);
      if (!this.usable || !entry.isFile() || !this.adopt(file)) fs.rmSync(file, { force: true, recursive: true });
    }
  }

  get size(): number {
    return this.free.length;
  }

  /** A spare to write through, the caller's alone until given back (a kept one, else a new name); undefined when unusable. */
  take(): string | undefined {
    if (!this.usable) return undefined;
    return this.free.pop() ?? this.newName();
  }

  /** A name to move a deleted record to, or undefined when the pool is full or unusable (delete the record instead). */
  room(): string | undefined {
    return this.usable && this.free.length < this.max ? this.newName() : undefined;
  }

  /** Gives back a spare that now holds garbage (a replaced or deleted record): kept, or removed when the pool is full. */
  async give(file: string): Promise<void> {
    if (this.adopt(file)) return;
    // No fsync: the file is garbage whatever happens to it, and a left-over one is swept by open().
    await fs.promises.rm(file, { force: true }).catch(() => undefined);
  }

  private adopt(file: string): boolean {
    if (this.free.length >= this.max) return false;
    this.free.push(file);
    return true;
  }

  private newName(): string {
    return path.join(this.dir, randomBytes(8).toString('hex'));
  }
}
