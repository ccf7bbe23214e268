// The snapshotter's durable index: snapshot key → short numeric id, kind and
// parent. One small JSON file, replaced atomically (write temp, fsync, rename,
// fsync dir), so after a crash it is either the old or the new version. Saves
// asked for while one is being written share the next (group commit): each
// writes everything changed before it began.
import * as fsp from 'node:fs/promises';
import { errnoCode, errorMessage, internal } from '../errors';
import { writeFileAtomicKeepingOld } from '../util/atomic_file';
import { GroupCommit } from '../util/group_commit';

export type SnapshotKind = 'committed' | 'active';

export interface SnapshotRecord {
  id: number;
  kind: SnapshotKind;
  /** Key of the committed parent snapshot (a chain ID). */
  parent?: string;
  /** ISO time of creation. */
  created: string;
}

interface MetadataFile {
  version: 1;
  nextId: number;
  snapshots: Record<string, SnapshotRecord>;
}

export class MetadataStore {
  private data: MetadataFile = { version: 1, nextId: 1, snapshots: {} };

  private readonly saves = new GroupCommit(() => this.write());

  constructor(
    private readonly file: string,
    /** How the file is written (a test counts the writes). */
    private readonly writeFile: (file: string, data: string, tmp: string) => Promise<unknown> = writeFileAtomicKeepingOld,
  ) {}

  async load(): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw internal(`reading snapshot metadata ${this.file}: ${errorMessage(err)}`, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw internal(`snapshot metadata ${this.file} is not valid JSON: ${errorMessage(err)}`, err);
    }
    if (!isMetadataFile(parsed)) throw internal(`snapshot metadata ${this.file} has an unexpected shape`);
    this.data = parsed;
  }

  get(key: string): SnapshotRecord | undefined {
    return Object.prototype.hasOwnProperty.call(this.data.snapshots, key) ? this.data.snapshots[key] : undefined;
  }

  entries(): Array<[string, SnapshotRecord]> {
    return Object.entries(this.data.snapshots);
  }

  children(key: string): string[] {
    return this.entries()
      .filter(([, r]) => r.parent === key)
      .map(([k]) => k);
  }

  allocateId(): number {
    return this.data.nextId++;
  }

  set(key: string, record: SnapshotRecord): void {
    this.data.snapshots[key] = record;
  }

  delete(key: string): void {
    delete this.data.snapshots[key];
  }

  /** Resolves once a write begun after this call (so holding every change made before it) is durable. */
  save(): Promise<void> {
    return this.saves.request();
  }

  private async write(): Promise<void> {
    // A fixed temp name: init() knows it and removes a half-written one. The
    // old file is swapped into it and written over next time, so a save (one
    // per container create and remove) makes and frees no inode
    // (src/store/spare_files.ts says why that pays).
    await this.writeFile(this.file, JSON.stringify(this.data, null, 1), `${this.file}.tmp`);
  }

}

function isMetadataFile(v: unknown): v is MetadataFile {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  if (o.version !== 1 || typeof o.nextId !== 'number' || typeof o.snapshots !== 'object' || o.snapshots === null) {
    return false;
  }
  for (const r of Object.values(o.snapshots as Record<string, unknown>)) {
    if (typeof r !== 'object' || r === null) return false;
    const rec = r as Record<string, unknown>;
    if (typeof rec.id !== 'number' || (rec.kind !== 'committed' && rec.kind !== 'active')) return false;
    if (rec.parent !== undefined && typeof rec.parent !== 'string') return false;
  }
  return true;
}
