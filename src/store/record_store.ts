// The one record store of pods, containers and images: durable JSON records,
// one file per id, written atomically (temp file, fsync, rename or exchange,
// fsync of the directory) so a crash leaves the old or the new record, never
// a torn one. The temp files are spares, inodes of old records kept for reuse
// in a directory beside the store's (spare_files.ts).
// Kept in memory after load, in creation order; the files are the truth.
// It also owns name reservation (a name belongs to one id until released),
// lookup by id or unique prefix, label filtering, and state changes checked
// against the record kind's declared state machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, internal, invalidArgument } from '../errors';
import type { Logger } from '../log/logger';
import { fsyncDir, writeFileAtomic, writeFileAtomicKeepingOld } from '../util/atomic_file';
import { KeyedMutex } from '../util/keyed_mutex';
import { SpareFiles } from './spare_files';
import { assertTransition, type StateMachine } from './state_machine';

/** Temp files of interrupted writes: `<name>.tmp` and `<name>.tmp-<random>`. */
const TEMP_FILE = /\.tmp(-[0-9a-f]+)?$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** Spare files kept per store: more than the records a burst of pod starts and removals replaces at once. */
const MAX_SPARES = 64;

export interface RecordStoreOptions<T extends { id: string }, S extends string> {
  dir: string;
  /** What the records are, for messages and logs ("container"). */
  what: string;
  logger: Logger;
  /** File name (without .json) of an id, and back; default: the id itself, 64 hex characters. */
  fileKeyOf?: (id: string) => string;
  idOfFileKey?: (key: string) => string | undefined;
  /** The reserved name of a record, or undefined when it holds none (e.g. still being created). */
  nameOf?: (rec: T) => string | undefined;
  /** The record's state and the machine its changes are checked against. */
  states?: { machine: StateMachine<S>; of: (rec: T) => S };
  /** Creation time (decimal nanoseconds) used to order records loaded from disk. */
  createdAtOf?: (rec: T) => string;
}

/** True when every key=value of the selector is among the labels. */
export function labelsMatch(labels: Record<string, string> | null | undefined, selector: Record<string, string> | null | undefined): boolean {
  if (!selector) return true;
  for (const k in selector) if ((labels ?? {})[k] !== selector[k]) return false;
  return true;
}

export class RecordStore<T extends { id: string }, S extends string = string> {
  readonly dir: string;
  private records = new Map<string, T>();
  private readonly names = new Map<string, string>();
  /** How many updates each record has had: what a cached view of a record is keyed on. */
  private readonly revisions = new WeakMap<T, number>();
  /** Changes with every create(), update(), delete() and load(): what a cached view of a whole list is keyed on. */
  private changes = 0;
  /** Writes of one id are applied in call order. */
  private readonly writes = new KeyedMutex();
  private readonly fileKeyOf: (id: string) => string;
  private readonly idOfFileKey: (key: string) => string | undefined;
  private readonly spares: SpareFiles;

  constructor(private readonly opts: RecordStoreOptions<T, S>) {
    this.dir = opts.dir;
    this.spares = new SpareFiles(opts.dir, MAX_SPARES);
    this.fileKeyOf = opts.fileKeyOf ?? ((id) => id);
    this.idOfFileKey = opts.idOfFileKey ?? ((key) => (HEX64.test(key) ? key : undefined));
  }

  /**
   * Reads every record; temp files of interrupted writes are removed (spares
   * kept, spare_files.ts), unreadable records skipped with a warning.
   */
  load(): T[] {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.spares.open();
    const loaded: T[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const file = path.join(this.dir, name);
      if (TEMP_FILE.test(name)) {
        fs.rmSync(file, { force: true });
        continue;
      }
      const id = name.endsWith('.json') ? this.idOfFileKey(name.slice(0, -5)) : undefined;
      if (id === undefined) continue;
      try {
        const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
        if (typeof rec !== 'object' || rec === null || rec.id !== id) {
          throw new Error(`id ${JSON.stringify((rec as Partial<T> | null)?.id)} does not match the file name`);
        }
        loaded.push(rec);
      } catch (err) {
        this.opts.logger.warn(`skipping unreadable ${this.opts.what} record`, { file, error: errorMessage(err) });
      }
    }
    const createdAt = this.opts.createdAtOf;
    if (createdAt) loaded.sort((a, b) => compareDecimal(createdAt(a), createdAt(b)));
    this.records = new Map(loaded.map((r) => [r.id, r]));
    this.changes++;
    this.names.clear();
    for (const rec of loaded) {
      const name = this.opts.nameOf?.(rec);
      if (name !== undefined) this.names.set(name, rec.id);
    }
    return this.list();
  }

  // ---- lookup ---------------------------------------------------------------

  get(id: string): T | undefined {
    return this.records.get(id);
  }

  /** The record of an exact id or a unique id prefix; undefined when none. An ambiguous prefix is INVALID_ARGUMENT. */
  find(idOrPrefix: string, visible: (rec: T) => boolean = () => true): T | undefined {
    const exact = this.records.get(idOrPrefix);
    if (exact) return visible(exact) ? exact : undefined;
    if (!idOrPrefix) return undefined;
    let found: T | undefined;
    let count = 0;
    for (const rec of this.records.values()) {
      if (rec.id.startsWith(idOrPrefix) && visible(rec)) {
        found = rec;
        count++;
      }
    }
    if (count > 1) throw invalidArgument(`${this.opts.what} id prefix "${idOrPrefix}" is ambiguous (${count} match); give more of the id`);
    return found;
  }

  /** Records in creation order, those that pass `filter` when given. */
  list(filter?: (rec: T) => boolean): T[] {
    const out: T[] = [];
    for (const rec of this.records.values()) if (!filter || filter(rec)) out.push(rec);
    return out;
  }

  /** Changes with every update() of the record (a record is changed only through update()). */
  revision(rec: T): number {
    return this.revisions.get(rec) ?? 0;
  }

  /** Changes whenever any record is created, updated or deleted (a record is changed only through update()). */
  get generation(): number {
    return this.changes;
  }

  get size(): number {
    return this.records.size;
  }

  // ---- names ----------------------------------------------------------------

  /**
   * Reserves `name` for `id`, synchronously (so concurrent requests for one
   * name conflict). Returns the id already holding it, or undefined when the
   * reservation succeeded.
   */
  reserveName(name: string, id: string): string | undefined {
    const holder = this.names.get(name);
    if (holder !== undefined && holder !== id) return holder;
    this.names.set(name, id);
    return undefined;
  }

  /** Releases `name` if `id` holds it (a newer holder keeps it). */
  releaseName(name: string, id: string): void {
    if (this.names.get(name) === id) this.names.delete(name);
  }

  nameHolder(name: string): string | undefined {
    return this.names.get(name);
  }

  // ---- writes ---------------------------------------------------------------

  /** Adds a new record: visible in memory at once, durable when the promise resolves. */
  create(rec: T): Promise<void> {
    if (this.records.has(rec.id)) throw internal(`${this.opts.what} ${rec.id} already has a record`);
    this.records.set(rec.id, rec);
    this.changes++;
    return this.persist(rec);
  }

  /**
   * Applies `change` to the record of `id` and persists it. The change runs on
   * a copy; when the declared state machine refuses the resulting state
   * change nothing is applied. The record object keeps its identity (holders
   * of it see the change). Returns the record.
   */
  async update(id: string, change: (draft: T) => void): Promise<T> {
    const rec = this.records.get(id);
    if (!rec) throw internal(`${this.opts.what} ${id} has no record to update`);
    const draft = structuredClone(rec);
    change(draft);
    if (draft.id !== id) throw internal(`${this.opts.what} ${id}: a record's id cannot change`);
    const states = this.opts.states;
    if (states) assertTransition(states.machine, id, states.of(rec), states.of(draft));
    Object.assign(rec, draft);
    this.revisions.set(rec, this.revision(rec) + 1);
    this.changes++;
    await this.persist(rec);
    return rec;
  }

  /** Deletes the record and releases its name. */
  delete(id: string): Promise<void> {
    const rec = this.records.get(id);
    if (this.records.delete(id)) this.changes++;
    const name = rec ? this.opts.nameOf?.(rec) : undefined;
    if (name !== undefined) this.releaseName(name, id);
    const file = this.fileOf(id);
    return this.writes.run(id, async () => {
      try {
        // Into a spare when there is room: the inode is kept for a later write.
        const spare = this.spares.room();
        if (spare === undefined) {
          await fs.promises.unlink(file);
        } else {
          await fs.promises.rename(file, spare);
          await this.spares.give(spare);
        }
        await fsyncDir(this.dir);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw internal(`cannot delete ${this.opts.what} record ${file}: ${errorMessage(err)}`, err);
      }
    });
  }

  private fileOf(id: string): string {
    return path.join(this.dir, `${this.fileKeyOf(id)}.json`);
  }

  private persist(rec: T): Promise<void> {
    const file = this.fileOf(rec.id);
    const data = JSON.stringify(rec, null, 1);
    return this.writes.run(rec.id, async () => {
      // A record deleted while this write waited stays deleted.
      if (this.records.get(rec.id) !== rec) return;
      // Through a spare: the old record is swapped into it, so no inode is made or freed (spare_files.ts).
      const spare = this.spares.take();
      try {
        if (spare === undefined) await writeFileAtomic(file, data);
        else if (await writeFileAtomicKeepingOld(file, data, spare)) await this.spares.give(spare);
      } catch (err) {
        throw internal(`cannot write ${this.opts.what} record ${file}: ${errorMessage(err)}`, err);
      }
    });
  }
}

function compareDecimal(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}
