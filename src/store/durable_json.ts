// Durable JSON records, one file per id, written atomically (temp file, fsync,
// rename, fsync of the directory) so a crash leaves the old or the new record,
// never a torn one. Kept in memory after load; the files are the truth.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, internal } from '../errors';
import type { Logger } from '../log/logger';
import { SHA256_HEX } from '../oci/digest';
import { fsyncDir, writeFileAtomic } from '../util/atomic_file';
import { KeyedMutex } from '../util/keyed_mutex';

/** Temp files of interrupted writes: `<name>.tmp` and `<name>.tmp-<random>`. */
const TEMP_FILE = /\.tmp(-[0-9a-f]+)?$/;

export class DurableJsonStore<T extends { id: string }> {
  private readonly records = new Map<string, T>();
  /** Writes of one id are applied in call order. */
  private readonly writes = new KeyedMutex();

  constructor(
    readonly dir: string,
    private readonly what: string,
    private readonly logger: Logger,
    private readonly idPattern = SHA256_HEX,
  ) {}

  /** Reads every record; temp files of interrupted writes are removed, unreadable records skipped with a warning. */
  load(): T[] {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.records.clear();
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      if (TEMP_FILE.test(name)) {
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

  /**
   * Makes `rec` the record of its id: visible in memory at once, durable when
   * the promise resolves. Writes of one id are applied in call order.
   */
  save(rec: T): Promise<void> {
    this.records.set(rec.id, rec);
    const file = path.join(this.dir, `${rec.id}.json`);
    const data = JSON.stringify(rec, null, 1);
    return this.writes.run(rec.id, async () => {
      try {
        await writeFileAtomic(file, data);
      } catch (err) {
        throw internal(`cannot write ${this.what} record ${file}: ${errorMessage(err)}`, err);
      }
    });
  }

  delete(id: string): Promise<void> {
    this.records.delete(id);
    const file = path.join(this.dir, `${id}.json`);
    return this.writes.run(id, async () => {
      try {
        await fs.promises.unlink(file);
        await fsyncDir(this.dir);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw internal(`cannot delete ${this.what} record ${file}: ${errorMessage(err)}`, err);
      }
    });
  }
}
