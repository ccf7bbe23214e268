// The overlayfs snapshotter. Layers are committed snapshots keyed by chain ID
// and shared by every image that has them; a container gets an active snapshot
// (upper + work dir) on top, mounted as overlayfs.
//
// On disk, under root:
//   metadata.json        key → {id, kind, parent}, replaced atomically
//   snapshots/<id>/fs    a layer's contents (committed) or the upper dir (active)
//   snapshots/<id>/work  overlay work dir (active only)
//   tmp/                 extractions and removals in progress; wiped by init()
// Short numeric ids keep lowerdir strings short; mounts run with cwd set to
// snapshots/ and relative "<id>/fs" paths, so even hundreds of layers fit in the
// kernel's one-page limit for mount options (as containerd does).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  BerthError,
  alreadyExists,
  errnoCode,
  errorMessage,
  failedPrecondition,
  internal,
  invalidArgument,
  isAborted,
  notFound,
} from '../errors';
import type { Logger } from '../log/logger';
import { digestOfHex, isSha256Digest } from '../oci/digest';
import { toReadable } from './decompress';
import { MetadataStore, type SnapshotKind, type SnapshotRecord } from './metadata';
import { parseMountInfo, readMountInfo, readMountInfoText } from '../util/mountinfo';
import { MAX_MOUNT_OPTIONS, mountOverlay, umountAll } from './mount';
import { UnpackPool } from './unpack_pool';
import { KeyedMutex } from '../util/keyed_mutex';
import { SingleFlight } from '../util/single_flight';
import { setfattrPath } from './xattr';
import { SnapshotUsageBook, type ActivityProbe, type UsageFigure } from './usage';

export interface ApplyLayerOptions {
  chainId: string;
  parentChainId?: string;
  diffId: string;
  mediaType: string;
  stream: NodeJS.ReadableStream;
  /**
   * Settles once the parent layer is committed (or will not be). With it the
   * layer is unpacked at once, into its own directory, and committed only
   * after this resolves; without it the parent must be committed already.
   */
  parentReady?: Promise<unknown>;
}

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  parent?: string;
}

export interface SnapshotUsage {
  bytes: bigint;
  inodes: bigint;
  mountpoint: string;
}

/**
 * Unpack worker threads: one per core besides the main thread's (at least one,
 * at most four). Each unpacks any number of layers at once and costs its own
 * heap and malloc arena (some 40 MiB resident while busy), so more than the
 * cores can run buys nothing.
 */
export const DEFAULT_UNPACK_WORKERS = Math.min(4, Math.max(1, os.availableParallelism() - 1));

export class Snapshotter {
  private readonly snapshotsDir: string;
  private readonly tmpDir: string;
  private readonly emptyDir: string;
  private readonly meta: MetadataStore;
  /** Unpacks in flight by chain ID: the one guarantee that a layer is unpacked once at a time. */
  private readonly unpacks = new SingleFlight<void>();
  /** Serialises metadata changes (and the renames that go with them); one key, the metadata file. */
  private readonly lock = new KeyedMutex();
  private initialized = false;
  /** Per-snapshot disk usage, measured on commit and prepare, writable layers again in the background. */
  private readonly usageBook = new SnapshotUsageBook((key) => {
    const rec = this.meta.get(key);
    if (rec === undefined) return undefined;
    const writable = rec.kind === 'active';
    // A writable layer is what its container wrote (the upper dir); a layer counts whole.
    return { dir: writable ? this.fsDir(rec) : this.snapshotDir(rec), writable, withDir: !writable };
  });
  private rootMountpoint?: Promise<string>;
  private readonly unpackPool: UnpackPool;

  /**
   * @param unpackWorkers worker threads that unpack layers (several at once, off the
   *   event loop); 0 unpacks on the main thread, one layer's entries at a time.
   */
  constructor(
    readonly root: string,
    private readonly logger: Logger,
    unpackWorkers = DEFAULT_UNPACK_WORKERS,
  ) {
    this.unpackPool = new UnpackPool({ workers: unpackWorkers, log: logger });
    this.snapshotsDir = path.join(root, 'snapshots');
    this.tmpDir = path.join(root, 'tmp');
    this.emptyDir = path.join(root, 'empty');
    this.meta = new MetadataStore(path.join(root, 'metadata.json'));
  }

  async init(): Promise<void> {
    // Paths go into overlay mount options, where ',' and ':' separate values.
    if (!path.isAbsolute(this.root) || /[,:\s\\]/.test(this.root)) {
      throw failedPrecondition(`snapshot root ${JSON.stringify(this.root)} must be absolute, without , : \\ or spaces`);
    }
    await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.emptyDir, { recursive: true, mode: 0o755 });
    await fsp.mkdir(this.snapshotsDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.tmpDir, 0o700);
    await fsp.rm(path.join(this.root, 'metadata.json.tmp'), { force: true });
    await this.meta.load();

    // Half-done extractions/removals from a crash.
    for (const name of await fsp.readdir(this.tmpDir)) {
      this.logger.info('removing leftover snapshot work from an earlier run', { path: path.join(this.tmpDir, name) });
      await fsp.rm(path.join(this.tmpDir, name), { recursive: true, force: true });
    }
    // Snapshot dirs renamed into place whose metadata was never written (crash between the two).
    const known = new Set(this.meta.entries().map(([, r]) => String(r.id)));
    for (const name of await fsp.readdir(this.snapshotsDir)) {
      if (!known.has(name)) {
        this.logger.info('removing orphaned snapshot directory', { path: path.join(this.snapshotsDir, name) });
        await fsp.rm(path.join(this.snapshotsDir, name), { recursive: true, force: true });
      }
    }
    // Records whose directory has gone (removed by hand) can't be mounted; forget them.
    let dropped = false;
    for (const [key, rec] of this.meta.entries()) {
      if (!fs.existsSync(this.fsDir(rec))) {
        this.logger.warn('snapshot directory missing; forgetting the snapshot', { key, id: rec.id });
        this.meta.delete(key);
        dropped = true;
      }
    }
    // Children of forgotten parents are unusable too.
    for (let changed = dropped; changed; ) {
      changed = false;
      for (const [key, rec] of this.meta.entries()) {
        if (rec.parent !== undefined && this.meta.get(rec.parent) === undefined) {
          this.logger.warn('snapshot parent missing; forgetting the snapshot', { key, parent: rec.parent });
          this.meta.delete(key);
          await fsp.rm(this.snapshotDir(rec), { recursive: true, force: true });
          changed = dropped = true;
        }
      }
    }
    if (dropped) await this.meta.save();
    if (setfattrPath() === undefined) {
      this.logger.warn('setfattr not found (Debian package attr): layers with opaque directories will fail to unpack');
    }
    this.initialized = true;
    this.usageBook.start(this.meta.entries().map(([key]) => key));
  }

  hasCommitted(chainId: string): boolean {
    return this.meta.get(chainId)?.kind === 'committed';
  }

  applyLayer(opts: ApplyLayerOptions): Promise<void> {
    this.assertInit();
    // A failed parent is awaited only after the unpack (or never, when this call is refused or joins another).
    opts.parentReady?.catch(() => undefined);
    if (!isSha256Digest(opts.chainId)) {
      discard(opts.stream);
      return Promise.reject(invalidArgument(`chain ID ${JSON.stringify(opts.chainId)} is not a sha256 digest`));
    }
    if (!isSha256Digest(opts.diffId)) {
      discard(opts.stream);
      return Promise.reject(invalidArgument(`diff ID ${JSON.stringify(opts.diffId)} is not a sha256 digest`));
    }
    if (this.hasCommitted(opts.chainId)) {
      discard(opts.stream);
      return Promise.resolve();
    }
    const running = this.unpacks.get(opts.chainId);
    if (running) {
      // Someone is already unpacking this layer; its result is ours - unless its pull was
      // cancelled, then we unpack our own stream (held, unread, meanwhile).
      return running.then(
        () => discard(opts.stream),
        (err: unknown) => {
          if (isAborted(err)) return this.applyLayer(opts);
          discard(opts.stream);
          throw err;
        },
      );
    }
    return this.unpacks.run(opts.chainId, () => this.unpackAndCommit(opts));
  }

  /** Whether layer `chainId` is being unpacked now (garbage collection must leave it alone). */
  isApplying(chainId: string): boolean {
    return this.unpacks.has(chainId);
  }

  private async unpackAndCommit(opts: ApplyLayerOptions): Promise<void> {
    const input = toReadable(opts.stream);
    let work: string | undefined;
    try {
      if (opts.parentReady === undefined && opts.parentChainId !== undefined && !this.hasCommitted(opts.parentChainId)) {
        throw failedPrecondition(`parent layer ${opts.parentChainId} of ${opts.chainId} is not unpacked`);
      }
      work = await fsp.mkdtemp(path.join(this.tmpDir, 'extract-'));
      const layerRoot = path.join(work, 'fs');
      await fsp.mkdir(layerRoot, { mode: 0o755 });
      const started = process.hrtime.bigint();
      // A layer's tar holds only its own changes: it unpacks without its parent.
      const result = await this.unpackPool.unpack(layerRoot, opts.mediaType, input);
      const actual = digestOfHex(result.sha256);
      if (actual !== opts.diffId) {
        throw invalidArgument(`layer content digest ${actual} does not match its diff ID ${opts.diffId}`);
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Committed in chain order: the parent first (a failed parent fails this layer too).
      if (opts.parentReady !== undefined) await opts.parentReady;
      const committed = await this.withLock(async () => {
        if (opts.parentChainId !== undefined && !this.hasCommitted(opts.parentChainId)) {
          throw failedPrecondition(`parent layer ${opts.parentChainId} of ${opts.chainId} is not committed`);
        }
        if (this.meta.get(opts.chainId) !== undefined) {
          throw alreadyExists(`an active snapshot is already named ${opts.chainId}`);
        }
        const id = this.meta.allocateId();
        const record: SnapshotRecord = {
          id,
          kind: 'committed',
          parent: opts.parentChainId,
          created: new Date().toISOString(),
        };
        await fsp.rename(work as string, this.snapshotDir(record));
        work = undefined;
        this.meta.set(opts.chainId, record);
        return record;
      });
      await this.saveOrRollBack(opts.chainId, committed);
      await this.usageBook.measure(opts.chainId);
      this.logger.debug('layer committed', {
        chainId: opts.chainId,
        entries: result.entries,
        bytes: result.bytes,
        ms: Math.round(ms),
      });
    } catch (err) {
      // Stop the producer of a layer we gave up on; the unpack has stopped writing by now.
      if (!input.destroyed) input.destroy();
      if (work !== undefined) await fsp.rm(work, { recursive: true, force: true });
      if (err instanceof BerthError) throw err;
      throw internal(`unpacking layer ${opts.chainId}: ${errorMessage(err)}`, err);
    }
  }

  /** Stops the unpack workers (berthd's shutdown); layers being unpacked fail and leave nothing. */
  close(): Promise<void> {
    return this.unpackPool.close();
  }

  async prepare(key: string, parentChainId: string): Promise<void> {
    this.assertInit();
    if (key === '' || key.includes('\0')) throw invalidArgument('snapshot key must be a non-empty string');
    // The directories are made in a temp dir of this call's own, outside the
    // lock that serialises every prepare, commit and remove: only naming the
    // snapshot (id, rename) and the metadata write need it. A crash leaves
    // only tmp/ garbage, which init() removes.
    const work = await fsp.mkdtemp(path.join(this.tmpDir, 'prepare-'));
    let placed = false;
    try {
      await fsp.mkdir(path.join(work, 'fs'), { mode: 0o755 });
      await fsp.chmod(path.join(work, 'fs'), 0o755);
      await fsp.mkdir(path.join(work, 'work'), { mode: 0o700 });
      const record = await this.withLock(async () => {
        if (this.meta.get(key) !== undefined) throw alreadyExists(`snapshot ${key} already exists`);
        if (!this.hasCommitted(parentChainId)) throw notFound(`parent snapshot ${parentChainId} not found`);
        const made: SnapshotRecord = {
          id: this.meta.allocateId(),
          kind: 'active',
          parent: parentChainId,
          created: new Date().toISOString(),
        };
        await fsp.rename(work, this.snapshotDir(made));
        placed = true;
        this.meta.set(key, made);
        return made;
      });
      await this.saveOrRollBack(key, record);
    } catch (err) {
      if (!placed) await fsp.rm(work, { recursive: true, force: true });
      throw err;
    }
    await this.usageBook.measure(key);
  }

  /**
   * The overlay options for a snapshot, run with cwd = the snapshots dir. The
   * topmost dir is absolute (upperdir/workdir of an active snapshot, the first
   * lowerdir of a read-only view), so mountinfo tells which snapshot a mount
   * uses; the parent layers are relative "<id>/fs" to keep the string short.
   */
  mountOptions(key: string, readonly = false): string {
    const rec = this.meta.get(key);
    if (rec === undefined) throw notFound(`snapshot ${key} not found`);
    const lowers: string[] = [];
    if (rec.kind === 'committed') lowers.push(this.fsDir(rec));
    for (let parent = rec.parent; parent !== undefined; ) {
      const p = this.meta.get(parent);
      if (p === undefined) throw internal(`snapshot ${key}: ancestor ${parent} is missing`);
      lowers.push(`${p.id}/fs`);
      parent = p.parent;
    }
    if (rec.kind === 'committed') {
      // Without an upper dir overlayfs wants two lower dirs; an empty one keeps a lone layer an overlay too.
      if (lowers.length === 1) lowers.push(path.relative(this.snapshotsDir, this.emptyDir));
      return `ro,lowerdir=${lowers.join(':')}`;
    }
    const opts = [`lowerdir=${lowers.join(':')}`, `upperdir=${this.fsDir(rec)}`, `workdir=${this.workDir(rec)}`];
    if (readonly) opts.unshift('ro');
    return opts.join(',');
  }

  /**
   * Mounts the snapshot at target. `lowerBase` is another view of the
   * snapshots dir (an idmapped copy of it) that the relative lower layers
   * are taken from instead; upper and work dirs stay the real ones.
   */
  async mount(key: string, target: string, readonly = false, lowerBase?: string): Promise<void> {
    this.assertInit();
    // Absolute: the overlay mount runs with cwd = snapshots dir.
    target = path.resolve(target);
    const options = this.mountOptions(key, readonly);
    if (options.length > MAX_MOUNT_OPTIONS) {
      throw failedPrecondition(`snapshot ${key} has too many layers to mount (${options.length}-byte options)`);
    }
    await mountOverlay(options, target, lowerBase ?? this.snapshotsDir);
  }

  /** The directory of all snapshots (the source of an idmapped view for mount's lowerBase). */
  get snapshotsRoot(): string {
    return this.snapshotsDir;
  }

  /**
   * Gives the (empty) upper dir of an active snapshot to uid:gid, so the root
   * of a user namespace can write the root directory of a rootfs whose lower
   * layers are idmapped to it.
   */
  async chownUpper(key: string, uid: number, gid: number): Promise<void> {
    const rec = this.meta.get(key);
    if (rec === undefined) throw notFound(`snapshot ${key} not found`);
    if (rec.kind !== 'active') throw failedPrecondition(`snapshot ${key} is not active`);
    await fsp.chown(this.fsDir(rec), uid, gid);
  }

  async unmount(target: string): Promise<void> {
    let resolved = target;
    try {
      resolved = await fsp.realpath(target);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    // Every layer stacked on the target (a repeated mount would leave several).
    await umountAll(resolved);
  }

  async remove(key: string): Promise<void> {
    this.assertInit();
    const trash = await this.withLock(async () => {
      const rec = this.meta.get(key);
      if (rec === undefined) throw notFound(`snapshot ${key} not found`);
      const children = this.meta.children(key);
      if (children.length > 0) {
        throw failedPrecondition(`snapshot ${key} still has ${children.length} child snapshot(s), e.g. ${children[0]}`);
      }
      if (await this.isMounted(rec)) throw failedPrecondition(`snapshot ${key} is mounted; unmount it first`);
      // Move it out of the way first: a crash after this leaves only tmp/ garbage, which init() removes.
      const trash = await fsp.mkdtemp(path.join(this.tmpDir, 'remove-'));
      await fsp.rename(this.snapshotDir(rec), path.join(trash, 'dir'));
      this.meta.delete(key);
      this.usageBook.forget(key);
      return trash;
    });
    // Outside the lock that serialises every prepare, commit and remove: the
    // save (shared with those under way) and the rm -r of what the container wrote.
    await this.meta.save();
    await fsp.rm(trash, { recursive: true, force: true });
  }

  async list(): Promise<SnapshotInfo[]> {
    this.assertInit();
    return this.meta.entries().map(([key, r]) => ({ key, kind: r.kind, parent: r.parent }));
  }

  /**
   * Bytes and inodes of every snapshot, from the figures kept in memory (see
   * usage.ts): no tree is walked here.
   */
  async usage(): Promise<SnapshotUsage> {
    this.assertInit();
    const mp = (this.rootMountpoint ??= this.mountPointOfRoot());
    mp.catch(() => {
      if (this.rootMountpoint === mp) this.rootMountpoint = undefined;
    });
    return { ...(await this.usageBook.total()), mountpoint: await this.rootMountpoint };
  }

  /** How a writable layer tells it is unchanged since its last walk (usage.ts ActivityProbe). */
  setWritableActivityProbe(probe: ActivityProbe): void {
    this.usageBook.setActivityProbe(probe);
  }

  /** A snapshot's last measured usage (a writable layer's at most a few seconds old), or undefined. */
  snapshotUsage(key: string): Promise<UsageFigure | undefined> {
    this.assertInit();
    return this.usageBook.of(key);
  }

  /** The directory holding a snapshot's contents (layer or upper dir). */
  path(key: string): string {
    const rec = this.meta.get(key);
    if (rec === undefined) throw notFound(`snapshot ${key} not found`);
    return this.fsDir(rec);
  }

  private async mountPointOfRoot(): Promise<string> {
    const real = await fsp.realpath(this.root);
    let best = '/';
    for (const m of await readMountInfo()) {
      const mp = m.mountPoint;
      if ((real === mp || real.startsWith(mp.endsWith('/') ? mp : `${mp}/`)) && mp.length > best.length) best = mp;
    }
    return best;
  }

  private async isMounted(rec: SnapshotRecord): Promise<boolean> {
    const key = rec.kind === 'active' ? 'upperdir' : 'lowerdir';
    const text = await readMountInfoText();
    // The usual answer is "no": then the option is nowhere in the table, and the table need not be parsed.
    if (!text.includes(`${key}=${this.fsDir(rec)}`)) return false;
    const pattern = new RegExp(`(^|,)${key}=${escapeRegExp(this.fsDir(rec))}($|[:,])`);
    for (const m of parseMountInfo(text)) {
      if (m.fsType === 'overlay' && pattern.test(m.superOptions)) return true;
    }
    return false;
  }

  /**
   * Persists a just-added record (outside the lock: saves under way at once
   * share one write); if that fails, forgets it and moves its dir out for removal.
   */
  private async saveOrRollBack(key: string, rec: SnapshotRecord): Promise<void> {
    try {
      await this.meta.save();
    } catch (err) {
      const trash = await this.withLock(async () => {
        if (this.meta.get(key) === rec) this.meta.delete(key);
        const dir = await fsp.mkdtemp(path.join(this.tmpDir, 'remove-'));
        await fsp.rename(this.snapshotDir(rec), path.join(dir, 'dir')).catch(() => undefined);
        return dir;
      });
      await fsp.rm(trash, { recursive: true, force: true });
      throw internal(`saving snapshot metadata: ${errorMessage(err)}`, err);
    }
  }

  private snapshotDir(rec: SnapshotRecord): string {
    return path.join(this.snapshotsDir, String(rec.id));
  }

  private fsDir(rec: SnapshotRecord): string {
    return path.join(this.snapshotDir(rec), 'fs');
  }

  private workDir(rec: SnapshotRecord): string {
    return path.join(this.snapshotDir(rec), 'work');
  }

  private assertInit(): void {
    if (!this.initialized) throw internal('snapshotter used before init()');
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run('metadata', fn);
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A stream we won't read: stop its producer. */
function discard(stream: NodeJS.ReadableStream): void {
  if (stream instanceof Readable) stream.destroy();
  else stream.resume();
}
