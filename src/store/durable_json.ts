// Durable JSON records, one file per id, written atomically (temp file, fsync,
// rename, fsync of the directory) so a crash leaves the old or the new record,
// never a torn one. Kept in memory after load; the files are the truth.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, internal } from '../errors';
import type { Logger } from '../log/logger';

/** Writes `data` to `file` atomically and durably. */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600): void {
  const tmp = `${file}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    syncDir(path.dirname(file));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class DurableJsonStore<T extends { id: string }> {
  private readonly records = new Map<string, T>();

  constructor(
    readonly dir: string,
    private readonly what: string,
    private readonly logger: Logger,
    private readonly idPattern = /^[0-9a-f]{64}$/,
  ) {}

  /** Reads every record; temp files of interrupted writes are removed, unreadable records skipped with a warning. */
  load(): T[] {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.records.clear();
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        fs.rmSync(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json') || !this.idPattern.test(name.slice(0, -5))) continue;
      try {
        const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
        if (rec.id !== name.slice(0, -5)) throw new Error(`id ${JSON.stringify(rec.id)} does not match the file name`);
        this.records.set(rec.id, rec);
      } catch (err) {
        this.logger.warn(`skipping unreadable ${this.what} record`, { file, error: errorMessage(err) });
      }
    }
    return this.list();
  }

  get(id: string): T | undefined {
    return this.records.get(id);
  }

  list(): T[] {
    return [...this.records.values()];
  }

  save(rec: T): void {
    const file = path.join(this.dir, `${rec.id}.json`);
    try {
      writeFileAtomic(file, JSON.stringify(rec, null, 1));
    } catch (err) {
      throw internal(`cannot write ${this.what} record ${file}: ${errorMessage(err)}`, err);
    }
    this.records.set(rec.id, rec);
  }

  delete(id: string): void {
    const file = path.join(this.dir, `${id}.json`);
    try {
      fs.unlinkSync(file);
      syncDir(this.dir);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw internal(`cannot delete ${this.what} record ${file}: ${errorMessage(err)}`, err);
    }
    this.records.delete(id);
  }
}
