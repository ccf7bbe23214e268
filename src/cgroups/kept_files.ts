// Cgroup files read over and over (the kubelet asks for the stats of every
// running container every 10 s) are kept open, so that a read is one pread
// instead of open, fstat, read and close. Kept per cgroup and closed when
// the cgroup is forgotten. A descriptor whose cgroup went away fails its
// read (ENODEV): the file is then opened again once, so a cgroup made anew
// at the same path is read, not the old one.
import * as fs from 'node:fs';

/** Reads a cgroup file's whole text, or undefined when it cannot be read (absent, gone). */
export type CgroupFileReader = (file: string) => string | undefined;

/** The plain reader: a file opened, read and closed each time. */
export function readCgroupFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}

/** Cgroup files are small (memory.stat is ~2 KiB); anything that fills this is read the plain way. */
const READ_BYTES = 16 * 1024;

export class KeptCgroupFiles {
  private readonly byCgroup = new Map<string, Map<string, number>>();
  private readonly buf = Buffer.allocUnsafe(READ_BYTES);

  /** A reader of `cgroup`'s files that keeps them open. */
  reader(cgroup: string): CgroupFileReader {
    return (file) => this.read(cgroup, file);
  }

  read(cgroup: string, file: string): string | undefined {
    let files = this.byCgroup.get(cgroup);
    if (!files) this.byCgroup.set(cgroup, (files = new Map()));
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd = files.get(file);
      if (fd === undefined) {
        try {
          fd = fs.openSync(file, 'r');
        } catch {
          return undefined;
        }
        files.set(file, fd);
      }
      let n: number;
      try {
        n = fs.readSync(fd, this.buf, 0, READ_BYTES, 0);
      } catch {
        this.close(files, file);
        continue;
      }
      return n < READ_BYTES ? this.buf.toString('latin1', 0, n) : readCgroupFile(file);
    }
    return undefined;
  }

  /** Closes the files of a cgroup (its container stopped or was removed). */
  forget(cgroup: string): void {
    const files = this.byCgroup.get(cgroup);
    if (!files) return;
    for (const file of [...files.keys()]) this.close(files, file);
    this.byCgroup.delete(cgroup);
  }

  /** Closes the files of every cgroup not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const cgroup of [...this.byCgroup.keys()]) if (!keep.has(cgroup)) this.forget(cgroup);
  }

  /** Descriptors held, for tests. */
  get openFiles(): number {
    let n = 0;
    for (const files of this.byCgroup.values()) n += files.size;
    return n;
  }

  private close(files: Map<string, number>, file: string): void {
    const fd = files.get(file);
    files.delete(file);
    if (fd === undefined) return;
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
}
