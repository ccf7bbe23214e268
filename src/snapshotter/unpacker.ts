// Secure extraction of one layer tar into a fresh, private directory, in the
// form overlayfs wants for a lower layer (whiteouts as 0:0 char devices, opaque
// dirs as trusted.overlay.opaque=y).
//
// The guarantee: no entry creates or modifies anything outside `root`.
//  - names are split into components; `..` is refused, leading `/` is dropped;
//  - parent directories are walked component by component with lstat and a
//    symlink (or any non-directory) on the way is refused, so nothing is ever
//    written through a link, including one planted earlier in the same layer;
//  - the final component is never followed: an existing entry there is
//    unlinked first and files are created with O_CREAT|O_EXCL|O_NOFOLLOW, so
//    a planted symlink, fifo or device node is replaced, never opened;
//  - ownership, modes and times are set through the descriptor we created
//    (fchown, then fchmod so setuid bits survive chown) or with the l* calls;
//  - hard-link targets resolve inside the layer by the same walk, and link(2)
//    does not follow a symlink target.
// Extraction is sequential and the directory is private (0700 parent), so
// nothing can change a validated path between the check and its use.
//
// File system calls here are synchronous on purpose: each is a few microseconds
// on the local disk, while a thread-pool round trip per call made unpacking
// several times slower (a layer has thousands of small files, ~6 calls each).
// berthd runs this in an unpack worker thread (unpack_pool.ts); where it runs on
// the main thread it gives the event loop a turn every 5 ms.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import {
  BerthError,
  errnoCode,
  errorMessage,
  internal,
  invalidArgument,
  resourceExhausted,
  unavailable,
  wrapError,
} from '../errors';
import { decompress } from './decompress';
import { findExecutable, run } from './exec';
import { Limits } from '../limits';
import { EventLoopBudget } from '../util/yield';
import { TarReader, type TarEntry, type TarLimits } from './tar_reader';
import { OPAQUE_XATTR, layerXattrAllowed, setXattrNoFollow, setXattrOnFd } from './xattr';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_DIRECTORY } = fs.constants;
const WHITEOUT_PREFIX = '.wh.';
const EUID = process.geteuid?.() ?? 0;
const EGID = process.getegid?.() ?? 0;
const OPAQUE_MARKER = '.wh..wh..opq';

/** The one thing the unpacker logs through: debug lines (a winston Logger, or a worker's relay of one). */
export interface UnpackLog {
  debug(message: string, meta: Record<string, unknown>): void;
}

interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  atime: number;
  xattrs: Map<string, Buffer>;
}

export interface UnpackResult {
  /** sha256 (hex) of the whole uncompressed stream. */
  sha256: string;
  /** Uncompressed bytes read. */
  bytes: number;
  entries: number;
}

/** Errors of the layer stream (the network), not of the archive or the disk. */
const STREAM_ERRORS = new Set(['ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** An error about one entry: keeps its kind and names the entry. */
function entryError(name: string, err: unknown): BerthError {
  const what = `layer entry ${JSON.stringify(name)}`;
  if (err instanceof BerthError) return wrapError(what, err);
  const msg = `${what}: ${errorMessage(err)}`;
  const code = errnoCode(err);
  if (code !== undefined && STREAM_ERRORS.has(code)) return unavailable(`reading layer stream: ${msg}`, err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return resourceExhausted(msg, err);
  if (code === 'EIO' || code === 'EMFILE' || code === 'ENFILE' || code === 'ENOMEM') return internal(msg, err);
  // Anything else (ENAMETOOLONG, ENOTDIR, EEXIST, ...) comes from what the archive asked for.
  return invalidArgument(msg, err);
}

export class LayerUnpacker {
  /** Relative paths known to be real directories created or checked in this layer ('' is the root). */
  private readonly knownDirs = new Set<string>(['']);
  private readonly dirMeta = new Map<string, DirMeta>();
  private readonly opaqueDirs = new Set<string>();
  /** Whiteout nodes created by this layer; a directory replacing one must hide the lower one, so becomes opaque. */
  private readonly whiteouts = new Set<string>();
  private entries = 0;
  /** xattrs written so far: each is a setfattr process, so a layer may ask for only so many. */
  private xattrsWritten = 0;

  /**
   * @param root an empty directory that becomes the layer's root (created by the caller).
   * @param limits bounds on the archive (defaults: src/limits.ts); tests pass smaller ones.
   */
  constructor(
    private readonly root: string,
    private readonly logger: UnpackLog,
    private readonly limits: { tar?: Partial<TarLimits>; xattrsWritten?: number } = {},
  ) {}

  async unpack(tarStream: AsyncIterable<Buffer | string>): Promise<UnpackResult> {
    const reader = new TarReader(tarStream, this.limits.tar);
    const budget = new EventLoopBudget();
    for (;;) {
      // Buffered entries are read without a turn of the event loop: give it one now and then.
      await budget.maybeYield();
      const entry = await readStream(() => reader.next());
      if (entry === null) break;
      this.entries++;
      try {
        await this.apply(entry, reader);
      } catch (err) {
        throw entryError(entry.name, err);
      }
    }
    try {
      await this.finalizeDirs();
    } catch (err) {
      throw err instanceof BerthError ? err : internal(`finishing layer directories: ${errorMessage(err)}`, err);
    }
    const { sha256, bytes } = await readStream(() => reader.finish());
    return { sha256, bytes, entries: this.entries };
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /** Archive name → path components inside the layer. Refuses `..` and NUL; drops `/` and `.`. */
  private components(name: string, what: string): string[] {
    if (name.includes('\0')) throw invalidArgument(`${what} contains a NUL byte`);
    const parts = name.split('/').filter((c) => c !== '' && c !== '.');
    if (parts.includes('..')) throw invalidArgument(`${what} ${JSON.stringify(name)} contains ".." (path traversal)`);
    return parts;
  }

  /**
   * Makes sure every ancestor of `parts` is a real directory inside the layer,
   * creating missing ones (as tar does); refuses symlinks and non-directories.
   */
  private ensureParents(parts: string[], create: boolean): void {
    for (let i = 0; i < parts.length - 1; i++) {
      const rel = parts.slice(0, i + 1).join('/');
      if (this.knownDirs.has(rel)) continue;
      const abs = this.abs(rel);
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(abs);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
      if (st !== undefined && create && this.whiteouts.has(rel)) {
        // The layer deletes the lower `rel` and then puts things under it: a new, opaque directory.
        fs.unlinkSync(abs);
        this.whiteouts.delete(rel);
        this.opaqueDirs.add(rel);
        st = undefined;
      }
      if (st === undefined) {
        if (!create) throw invalidArgument(`path component ${JSON.stringify(rel)} does not exist in this layer`);
        fs.mkdirSync(abs, { mode: 0o755 });
        fs.chmodSync(abs, 0o755); // umask-independent
      } else if (st.isSymbolicLink()) {
        throw invalidArgument(`path component ${JSON.stringify(rel)} is a symlink; refusing to write through it`);
      } else if (!st.isDirectory()) {
        throw invalidArgument(`path component ${JSON.stringify(rel)} is not a directory`);
      }
      this.knownDirs.add(rel);
    }
  }

  private lstatOrUndefined(abs: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(abs);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Removes whatever is at `rel` (never following it) and forgets what we knew under it. */
  private removeExisting(rel: string, st: fs.Stats): void {
    const abs = this.abs(rel);
    if (st.isDirectory()) {
      // fs.rm walks with lstat and unlinks symlinks rather than following them.
      fs.rmSync(abs, { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const set of [this.knownDirs, this.opaqueDirs, this.whiteouts]) {
        for (const k of set) if (k === rel || k.startsWith(prefix)) set.delete(k);
      }
      for (const k of this.dirMeta.keys()) if (k === rel || k.startsWith(prefix)) this.dirMeta.delete(k);
    } else {
      fs.unlinkSync(abs);
      this.whiteouts.delete(rel);
    }
  }

  private async apply(entry: TarEntry, reader: TarReader): Promise<void> {
    const parts = this.components(entry.name, 'entry name');
    if (parts.length === 0) {
      if (entry.type !== 'dir') throw invalidArgument('a non-directory entry names the layer root');
      this.dirMeta.set('', this.metaOf(entry));
      return;
    }
    const base = parts[parts.length - 1] as string;
    const parentRel = parts.slice(0, -1).join('/');
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.ensureParents(parts, true);
      if (base === OPAQUE_MARKER) {
        this.opaqueDirs.add(parentRel);
      } else if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        this.logger.debug('ignoring aufs metadata entry', { entry: entry.name });
      } else {
        const hidden = base.slice(WHITEOUT_PREFIX.length);
        if (hidden === '' || hidden === '.' || hidden === '..') throw invalidArgument('malformed whiteout name');
        await this.whiteout(parentRel === '' ? hidden : `${parentRel}/${hidden}`);
      }
      return;
    }

    this.ensureParents(parts, true);
    const rel = parts.join('/');
    const abs = this.abs(rel);
    const existing = this.lstatOrUndefined(abs);

    if (entry.type === 'dir') {
      if (existing?.isDirectory()) {
        this.dirMeta.set(rel, this.metaOf(entry));
        return;
      }
      const replacesWhiteout = existing !== undefined && this.whiteouts.has(rel);
      if (existing) this.removeExisting(rel, existing);
      fs.mkdirSync(abs, { mode: 0o700 });
      this.knownDirs.add(rel);
      this.dirMeta.set(rel, this.metaOf(entry));
      if (replacesWhiteout) this.opaqueDirs.add(rel);
      return;
    }

    if (entry.type === 'hardlink') {
      // Resolve and check the target before touching the destination.
      const targetParts = this.components(entry.linkName, 'hard link target');
      if (targetParts.length === 0) throw invalidArgument('hard link target is the layer root');
      this.ensureParents(targetParts, false);
      const targetRel = targetParts.join('/');
      if (targetRel === rel) throw invalidArgument('hard link to itself');
      const targetSt = this.lstatOrUndefined(this.abs(targetRel));
      if (targetSt === undefined) {
        throw invalidArgument(`hard link target ${JSON.stringify(entry.linkName)} is not in this layer`);
      }
      if (targetSt.isDirectory()) throw invalidArgument('hard link to a directory');
      if (existing) this.removeExisting(rel, existing);
      // link(2) on Linux does not dereference a symlink target: the link names the symlink itself.
      fs.linkSync(this.abs(targetRel), abs);
      return;
    }

    if (existing) this.removeExisting(rel, existing);
    switch (entry.type) {
      case 'file':
        await this.writeFile(abs, entry, reader);
        return;
      case 'symlink':
        if (entry.linkName === '' || entry.linkName.includes('\0')) throw invalidArgument('symlink with an empty target');
        // The target is stored verbatim and never followed here; it resolves inside the container's root.
        fs.symlinkSync(entry.linkName, abs);
        fs.lchownSync(abs, entry.uid, entry.gid);
        fs.lutimesSync(abs, entry.atime ?? entry.mtime, entry.mtime);
        return;
      case 'char':
      case 'block':
      case 'fifo':
        await this.makeNode(abs, entry);
        return;
    }
  }

  private metaOf(entry: TarEntry): DirMeta {
    return {
      mode: entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      mtime: entry.mtime,
      atime: entry.atime ?? entry.mtime,
      xattrs: entry.xattrs,
    };
  }

  private async writeFile(abs: string, entry: TarEntry, reader: TarReader): Promise<void> {
    // O_NONBLOCK: belt and braces, so even a fifo at this path could never block us (O_EXCL already refuses it).
    const fd = fs.openSync(abs, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, 0o600);
    try {
      for await (const chunk of reader.body()) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      }
      // A new file already belongs to our euid/egid (no parent has setgid while we extract: dir modes go on last).
      if (entry.uid !== EUID || entry.gid !== EGID) fs.fchownSync(fd, entry.uid, entry.gid);
      // After chown, which clears setuid/setgid and file capabilities.
      fs.fchmodSync(fd, entry.mode);
      await this.applyXattrs(fd, entry.xattrs, entry.name);
      fs.futimesSync(fd, entry.atime ?? entry.mtime, entry.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  private async makeNode(abs: string, entry: TarEntry): Promise<void> {
    const mknod = findExecutable('mknod');
    if (mknod === undefined) throw internal('mknod binary not found (coreutils)');
    const args =
      entry.type === 'fifo'
        ? ['--', abs, 'p']
        : ['--', abs, entry.type === 'char' ? 'c' : 'b', String(entry.devMajor), String(entry.devMinor)];
    await run(mknod, args);
    // The node was just created by us at a validated path: it is not a symlink, so the
    // path-based chmod below acts on it. Nodes are never opened (that could block or touch a device).
    fs.lchownSync(abs, entry.uid, entry.gid);
    fs.chmodSync(abs, entry.mode);
    for (const [name, value] of entry.xattrs) {
      if (!layerXattrAllowed(name)) continue;
      this.countXattr();
      await setXattrNoFollow(abs, name, value, `entry ${JSON.stringify(entry.name)}`);
    }
    fs.lutimesSync(abs, entry.atime ?? entry.mtime, entry.mtime);
  }

  /** An overlay whiteout: a 0:0 character device hiding `rel` of the lower layers. */
  private async whiteout(rel: string): Promise<void> {
    const abs = this.abs(rel);
    if (this.lstatOrUndefined(abs) !== undefined) {
      // This layer itself has the path: whiteouts only hide lower layers, and its own entry already does.
      return;
    }
    const mknod = findExecutable('mknod');
    if (mknod === undefined) throw internal('mknod binary not found (coreutils)');
    await run(mknod, ['--', abs, 'c', '0', '0']);
    this.whiteouts.add(rel);
  }

  private async applyXattrs(fd: number, xattrs: Map<string, Buffer>, entryName: string): Promise<void> {
    for (const [name, value] of xattrs) {
      if (!layerXattrAllowed(name)) {
        this.logger.debug('skipping xattr from layer', { entry: entryName, xattr: name });
        continue;
      }
      this.countXattr();
      await setXattrOnFd(fd, name, value, `entry ${JSON.stringify(entryName)}`);
    }
  }

  private countXattr(): void {
    const cap = this.limits.xattrsWritten ?? Limits.tarXattrsWrittenPerLayer;
    if (++this.xattrsWritten > cap) throw invalidArgument(`the layer sets more than ${cap} extended attributes`);
  }

  /**
   * Directory metadata goes on last (creating children changes a dir's mtime, and
   * a read-only mode must not block them). Paths are re-walked with lstat, since a
   * later entry may have replaced an ancestor with a symlink.
   */
  private async finalizeDirs(): Promise<void> {
    const rels = new Set<string>([...this.dirMeta.keys(), ...this.opaqueDirs, '']);
    // Deepest first; depths computed once (not per comparison: a layer may have 10^5 directories).
    const ordered = [...rels].map((rel) => ({ rel, depth: depth(rel) })).sort((a, b) => b.depth - a.depth);
    const budget = new EventLoopBudget();
    for (const { rel } of ordered) {
      await budget.maybeYield();
      const parts = rel === '' ? [] : rel.split('/');
      try {
        this.ensureParents([...parts, 'x'], false);
      } catch {
        continue; // replaced by a later entry; nothing of it is left to finish
      }
      let fd: number;
      try {
        fd = fs.openSync(this.abs(rel), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') continue;
        throw err;
      }
      try {
        const meta = this.dirMeta.get(rel);
        if (meta) {
          fs.fchownSync(fd, meta.uid, meta.gid);
          fs.fchmodSync(fd, meta.mode);
          await this.applyXattrs(fd, meta.xattrs, rel === '' ? '.' : rel);
        } else if (rel === '') {
          fs.fchmodSync(fd, 0o755);
        }
        if (this.opaqueDirs.has(rel)) {
          await setXattrOnFd(fd, OPAQUE_XATTR, Buffer.from('y'), `opaque directory ${JSON.stringify(rel || '.')}`);
        }
        if (meta) fs.futimesSync(fd, meta.atime, meta.mtime);
      } catch (err) {
        throw entryError(rel === '' ? '.' : rel, err);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
}

/** Errors from the stream itself: corrupt compression is the layer's fault; others (network) may pass. */
async function readStream<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BerthError) throw err;
    const code = errnoCode(err) ?? '';
    if (code.startsWith('Z_')) throw invalidArgument(`corrupt compressed layer: ${errorMessage(err)}`, err);
    throw unavailable(`reading layer stream: ${errorMessage(err)}`, err);
  }
}

function depth(rel: string): number {
  return rel === '' ? 0 : rel.split('/').length;
}

/**
 * Decompresses `input` by `mediaType` and unpacks it into `root` (an empty
 * directory): the whole unpack of one layer, wherever it runs (berthd's main
 * thread or an unpack worker, see unpack_pool.ts).
 */
export async function unpackLayerStream(root: string, mediaType: string, input: Readable, log: UnpackLog): Promise<UnpackResult> {
  const tar = decompress(mediaType, input);
  try {
    return await new LayerUnpacker(root, log).unpack(tar);
  } finally {
    // Stop the producer (and a zstd child) of a layer given up on.
    if (!tar.destroyed) tar.destroy();
    if (!input.destroyed) input.destroy();
  }
}
