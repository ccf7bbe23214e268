// A streaming tar reader: ustar, GNU long names/links ('L'/'K') and PAX
// headers ('x'/'g': path, linkpath, size, uid, gid, mtime, atime,
// SCHILY.xattr.*). It pulls chunks from an async iterable one at a time, so the
// producer is paused while an entry body is being written (backpressure), and it
// never holds more than one chunk plus one header. Every byte it pulls is fed to
// a sha256, so after finish() the digest covers the whole uncompressed stream
// (including the zero blocks and any trailing padding), which is what a layer's
// diffID is computed over.
import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from '../errors';
import { Limits } from '../limits';

const BLOCK = 512;

/** What one archive may hold; defaults from src/limits.ts (tests pass smaller ones). */
export interface TarLimits {
  paxHeaderBytes: number;
  longNameBytes: number;
  metadataBytes: number;
  globalPaxBytes: number;
  entries: number;
  xattrsPerEntry: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = {
  paxHeaderBytes: Limits.tarPaxHeaderBytes,
  longNameBytes: Limits.tarLongNameBytes,
  metadataBytes: Limits.tarMetadataBytesPerLayer,
  globalPaxBytes: Limits.tarGlobalPaxBytes,
  entries: Limits.tarEntriesPerLayer,
  xattrsPerEntry: Limits.tarXattrsPerEntry,
};

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** The name as stored in the archive (after PAX/GNU long-name overrides); not yet sanitised. */
  name: string;
  type: TarEntryType;
  /** Symlink target or hard-link target name (raw). */
  linkName: string;
  size: number;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, possibly fractional (PAX). */
  mtime: number;
  atime?: number;
  devMajor: number;
  devMinor: number;
  /** From SCHILY.xattr.<name> PAX records; values are raw bytes. */
  xattrs: Map<string, Buffer>;
}

/** Pulls exact byte counts out of a chunked async source, hashing every chunk. */
class ChunkSource {
  private pending: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly iterator: AsyncIterator<Buffer | string>;
  readonly hash: Hash = createHash('sha256');
  bytesRead = 0;

  constructor(source: AsyncIterable<Buffer | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** The next chunk of the source (hashed and counted), or null at its end. */
  private async pull(): Promise<Buffer | null> {
    if (this.done) return null;
    const r = await this.iterator.next();
    if (r.done) {
      this.done = true;
      return null;
    }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    this.hash.update(chunk);
    this.bytesRead += chunk.length;
    return chunk;
  }

  /**
   * Exactly n bytes, or null at a clean end of stream (nothing pending).
   * Chunks are gathered in a list and joined once, so a header arriving in
   * many small chunks costs linear time, not a re-concatenation per chunk.
   */
  async readExact(n: number): Promise<Buffer | null> {
    if (this.pending.length < n) {
      const parts: Buffer[] = this.pending.length > 0 ? [this.pending] : [];
      let have = this.pending.length;
      while (have < n) {
        const chunk = await this.pull();
        if (chunk === null) {
          if (have === 0) return null;
          throw invalidArgument(`tar stream truncated: wanted ${n} bytes, got ${have}`);
        }
        parts.push(chunk);
        have += chunk.length;
      }
      this.pending = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, have);
    }
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    return out;
  }

  /** Yields n bytes as they arrive, without copying more than one chunk. */
  async *readRange(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0) {
        const chunk = await this.pull();
        if (chunk === null) throw invalidArgument(`tar stream truncated: ${left} bytes of an entry missing`);
        this.pending = chunk;
      }
      const take = Math.min(left, this.pending.length);
      const out = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _chunk of this.readRange(n)) {
      // discarded
    }
  }

  /** Reads (and hashes) everything left in the source. */
  async drain(): Promise<void> {
    this.pending = Buffer.alloc(0);
    while ((await this.pull()) !== null) {
      // hashed and counted by pull
    }
  }
}

function cString(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

/** Octal (NUL/space terminated) or GNU base-256 numeric field. */
function numeric(buf: Buffer, off: number, len: number, what: string): number {
  const field = buf.subarray(off, off + len);
  if (field[0] !== undefined && (field[0] & 0x80) !== 0) {
    if ((field[0] & 0x40) !== 0) throw invalidArgument(`tar header field ${what} is negative`);
    let v = BigInt(field[0] & 0x3f);
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i] as number);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`tar header field ${what} too large`);
    return Number(v);
  }
  const s = field.toString('latin1').replace(/[\0 ].*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw invalidArgument(`tar header field ${what} is not octal: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8, 'chksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** The PAX keys we act on; every other record is parsed past and dropped, so none accumulates. */
const PAX_KEYS = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'mtime', 'atime']);

interface PaxValues {
  strings: Map<string, string>;
  xattrs: Map<string, Buffer>;
  /** A GNU.sparse.* record was present (sparse files are refused). */
  sparse: boolean;
}

const emptyPax = (): PaxValues => ({ strings: new Map(), xattrs: new Map(), sparse: false });

/** Bytes a PAX value set holds, to bound what global headers accumulate. */
function paxWeight(p: PaxValues): number {
  let n = 0;
  for (const [k, v] of p.strings) n += k.length + Buffer.byteLength(v);
  for (const [k, v] of p.xattrs) n += k.length + v.length;
  return n;
}

/**
 * Parses "<len> <key>=<value>\n" records; values stay bytes (xattrs are binary).
 * Linear in `data`: one pass, each record sliced once.
 */
function parsePax(data: Buffer, maxXattrs: number): PaxValues {
  const out = emptyPax();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad with NULs
    // The length field is at most a few digits: look for its space nearby only.
    const space = data.subarray(pos, pos + 24).indexOf(0x20);
    if (space === -1) throw invalidArgument('malformed PAX header: missing length');
    const lenStr = data.subarray(pos, pos + space).toString('latin1');
    if (!/^[0-9]+$/.test(lenStr)) throw invalidArgument('malformed PAX header: bad record length');
    const len = parseInt(lenStr, 10);
    const end = pos + len;
    if (len <= space + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw invalidArgument('malformed PAX header: bad record');
    }
    const record = data.subarray(pos + space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw invalidArgument('malformed PAX header: record without "="');
    const key = record.subarray(0, eq).toString('utf8');
    const value = record.subarray(eq + 1);
    if (key.startsWith('SCHILY.xattr.')) {
      out.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
      if (out.xattrs.size > maxXattrs) throw invalidArgument(`tar PAX header carries more than ${maxXattrs} xattrs`);
    } else if (PAX_KEYS.has(key)) {
      out.strings.set(key, value.toString('utf8'));
    } else if (key.startsWith('GNU.sparse.')) {
      out.sparse = true;
    }
    pos = end;
  }
  return out;
}

function paxNumber(v: string, key: string): number {
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(v)) throw invalidArgument(`PAX ${key} is not a number: ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) throw invalidArgument(`PAX ${key} out of range`);
  return n;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: an ordinary file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

export class TarReader {
  private readonly src: ChunkSource;
  private bodyLeft = 0;
  private padLeft = 0;
  private ended = false;
  /** PAX global records merged so far: only the keys we act on, so it stays small (and is bounded). */
  private readonly globalPax: PaxValues = emptyPax();
  private readonly limits: TarLimits;
  private metadataBytes = 0;
  private entries = 0;

  constructor(source: AsyncIterable<Buffer | string>, limits: Partial<TarLimits> = {}) {
    this.src = new ChunkSource(source);
    this.limits = { ...DEFAULT_TAR_LIMITS, ...limits };
  }

  /** Reads one extended header's data, charging it to the per-header and per-archive bounds. */
  private async readExtended(flag: string, size: number): Promise<Buffer> {
    const pax = flag === 'x' || flag === 'g';
    const cap = pax ? this.limits.paxHeaderBytes : this.limits.longNameBytes;
    const what = pax ? `PAX ${flag === 'g' ? 'global ' : ''}header` : flag === 'L' ? 'GNU long name' : 'GNU long link name';
    if (size > cap) throw invalidArgument(`tar ${what} of ${size} bytes exceeds the ${cap}-byte limit`);
    this.metadataBytes += size;
    if (this.metadataBytes > this.limits.metadataBytes) {
      throw invalidArgument(`tar extended headers exceed the ${this.limits.metadataBytes}-byte limit per archive`);
    }
    const data = size === 0 ? Buffer.alloc(0) : Buffer.from((await this.src.readExact(size)) ?? Buffer.alloc(0));
    if (data.length !== size) throw invalidArgument('tar stream truncated in an extended header');
    await this.src.skip(padding(size));
    return data;
  }

  private mergeGlobal(g: PaxValues): void {
    for (const [k, v] of g.strings) this.globalPax.strings.set(k, v);
    for (const [k, v] of g.xattrs) this.globalPax.xattrs.set(k, v);
    this.globalPax.sparse ||= g.sparse;
    if (this.globalPax.xattrs.size > this.limits.xattrsPerEntry) {
      throw invalidArgument(`tar PAX global headers carry more than ${this.limits.xattrsPerEntry} xattrs`);
    }
    const weight = paxWeight(this.globalPax);
    if (weight > this.limits.globalPaxBytes) {
      throw invalidArgument(`tar PAX global headers hold ${weight} bytes, over the ${this.limits.globalPaxBytes}-byte limit`);
    }
  }

  /** The next entry, or null after the end-of-archive marker. Skips any unread body. */
  async next(): Promise<TarEntry | null> {
    if (this.ended) return null;
    await this.src.skip(this.bodyLeft + this.padLeft);
    this.bodyLeft = 0;
    this.padLeft = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: PaxValues | undefined;
    for (;;) {
      const block = await this.src.readExact(BLOCK);
      if (block === null) {
        // EOF without the two zero blocks: accept only if nothing is half-announced.
        if (longName !== undefined || longLink !== undefined || pax !== undefined) {
          throw invalidArgument('tar stream ended after an extended header');
        }
        this.ended = true;
        return null;
      }
      if (isZeroBlock(block)) {
        this.ended = true;
        return null;
      }
      if (!checksumOk(block)) throw invalidArgument('tar header checksum mismatch (corrupt or not a tar stream)');
      const flag = String.fromCharCode(block[156] as number);
      let size = numeric(block, 124, 12, 'size');
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        const data = await this.readExtended(flag, size);
        if (flag === 'L') longName = cString(data, 0, data.length);
        else if (flag === 'K') longLink = cString(data, 0, data.length);
        else if (flag === 'x') pax = parsePax(data, this.limits.xattrsPerEntry);
        else this.mergeGlobal(parsePax(data, this.limits.xattrsPerEntry));
        continue;
      }
      const type = TYPES[flag];
      if (type === undefined) {
        throw invalidArgument(
          `tar entry "${cString(block, 0, 100)}" has unsupported type ${JSON.stringify(flag)} (sparse/multi-volume/unknown)`,
        );
      }
      if (++this.entries > this.limits.entries) {
        throw invalidArgument(`tar archive has more than ${this.limits.entries} entries`);
      }
      const magic = block.subarray(257, 263).toString('latin1');
      let name = cString(block, 0, 100);
      if (magic === 'ustar\0') {
        // POSIX ustar: prefix field. (GNU's "ustar  " uses those bytes for atime/ctime.)
        const prefix = cString(block, 345, 155);
        if (prefix !== '') name = `${prefix}/${name}`;
      }
      let linkName = cString(block, 157, 100);
      let uid = numeric(block, 108, 8, 'uid');
      let gid = numeric(block, 116, 8, 'gid');
      let mtime = numeric(block, 136, 12, 'mtime');
      let atime: number | undefined;
      // Both maps hold only the few keys we act on (see PAX_KEYS) and at most
      // xattrsPerEntry xattrs each, so building them per entry is constant work.
      let xattrs: Map<string, Buffer>;
      if (this.globalPax.xattrs.size === 0) xattrs = pax?.xattrs ?? new Map<string, Buffer>();
      else {
        xattrs = new Map(this.globalPax.xattrs);
        for (const [k, v] of pax?.xattrs ?? []) xattrs.set(k, v);
        if (xattrs.size > this.limits.xattrsPerEntry) {
          throw invalidArgument(`tar entry "${name}" carries more than ${this.limits.xattrsPerEntry} xattrs`);
        }
      }
      const strings = new Map<string, string>(this.globalPax.strings);
      for (const [k, v] of pax?.strings ?? []) strings.set(k, v);
      if (this.globalPax.sparse || pax?.sparse) throw invalidArgument(`tar entry "${name}" is a sparse file (unsupported)`);
      if (longName !== undefined) name = longName;
      if (longLink !== undefined) linkName = longLink;
      for (const [k, v] of strings) {
        switch (k) {
          case 'path':
            name = v;
            break;
          case 'linkpath':
            linkName = v;
            break;
          case 'size':
            size = paxNumber(v, k);
            break;
          case 'uid':
            uid = paxNumber(v, k);
            break;
          case 'gid':
            gid = paxNumber(v, k);
            break;
          case 'mtime':
            mtime = paxNumber(v, k);
            break;
          case 'atime':
            atime = paxNumber(v, k);
            break;
        }
      }
      if (size < 0 || !Number.isInteger(size)) throw invalidArgument(`tar entry "${name}" has a bad size`);
      // Only regular files carry data; hard links/dirs/devices with a size field have none in practice,
      // but the archive still holds `size` bytes for them, so skip those bytes.
      this.bodyLeft = size;
      this.padLeft = padding(size);
      return {
        name,
        type,
        linkName,
        size: type === 'file' ? size : 0,
        mode: numeric(block, 100, 8, 'mode') & 0o7777,
        uid,
        gid,
        mtime,
        atime,
        devMajor: type === 'char' || type === 'block' ? numeric(block, 329, 8, 'devmajor') : 0,
        devMinor: type === 'char' || type === 'block' ? numeric(block, 337, 8, 'devminor') : 0,
        xattrs,
      };
    }
  }

  /** The current entry's data, chunk by chunk. Call at most once per entry. */
  async *body(): AsyncGenerator<Buffer> {
    const n = this.bodyLeft;
    this.bodyLeft = 0;
    yield* this.src.readRange(n);
  }

  /** Reads to the end of the stream; returns the sha256 (hex) of every byte and the byte count. */
  async finish(): Promise<{ sha256: string; bytes: number }> {
    await this.src.drain();
    return { sha256: this.src.hash.digest('hex'), bytes: this.src.bytesRead };
  }
}
