// Reads an image archive (tar) once, front to back, storing what it holds:
// blobs named by digest (OCI layout "blobs/sha256/<hex>") are verified
// against their name while they stream into the content store; legacy
// `docker save` layer tars are stored under the digest computed from their
// bytes; small JSON documents (index.json, manifest.json, configs) are kept
// in memory, capped. Nothing the archive names is ever used as a path on
// disk, and names that try to leave the archive ("..", absolute) are refused.
import { Readable } from 'node:stream';
import { BerthError, invalidArgument } from '../../errors';
import type { ContentStore } from '../../content/store';
import { digestOfHex, isSha256Hex } from '../../oci/digest';
import { MAX_MANIFEST_BYTES } from '../../oci/manifest';
import { TarReader } from '../../snapshotter/tar_reader';
import { Limits } from '../../limits';

/** A file of the archive: stored in the content store, or held in memory. */
export type ArchiveFile = { kind: 'blob'; digest: string; size: number } | { kind: 'doc'; data: Buffer };

export interface ArchiveContents {
  files: Map<string, ArchiveFile>;
  /** Symlinks and hard links: archive path -> archive path of the target. */
  links: Map<string, string>;
  /** Every blob the archive stored or found already present. */
  blobs: Set<string>;
}

const BLOB_PATH = /^blobs\/([^/]+)\/([^/]+)$/;

/** An archive member name as a clean relative path; refuses traversal and absolute names. */
export function archivePath(name: string, what = 'archive entry'): string {
  if (name.includes('\0')) throw invalidArgument(`${what} name contains a NUL byte`);
  if (name.startsWith('/')) throw invalidArgument(`${what} ${JSON.stringify(name)} is an absolute path; refusing the archive`);
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw invalidArgument(`${what} ${JSON.stringify(name)} contains ".." (path traversal); refusing the archive`);
  return parts.join('/');
}

/** Where a symlink at `from` with target `target` points, inside the archive. */
function linkTarget(from: string, target: string, hard: boolean): string {
  if (target.startsWith('/')) throw invalidArgument(`archive link ${JSON.stringify(from)} points to an absolute path; refusing the archive`);
  const base = hard ? [] : from.split('/').slice(0, -1);
  for (const c of target.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (base.length === 0) throw invalidArgument(`archive link ${JSON.stringify(from)} points outside the archive; refusing it`);
      base.pop();
    } else base.push(c);
  }
  return base.join('/');
}

/** Documents read into memory: layout metadata and image configs. */
function isDocument(p: string): boolean {
  return p === 'index.json' || p === 'oci-layout' || p === 'manifest.json' || p === 'repositories' || (!p.includes('/') && p.endsWith('.json'));
}

/** Legacy `docker save` layers: <id>/layer.tar. */
function isLegacyLayer(p: string): boolean {
  return p.endsWith('/layer.tar') || p.endsWith('.tar') || p.endsWith('.tar.gz');
}

async function readAll(body: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  const data = Buffer.concat(chunks);
  if (data.length !== size) throw invalidArgument('archive truncated inside a document');
  return data;
}

export async function readArchive(source: AsyncIterable<Buffer | string>, content: ContentStore): Promise<ArchiveContents> {
  // An archive is a few dozen files (layout, configs, blobs): its entry count is bounded far below a layer's.
  const reader = new TarReader(source, { entries: Limits.archiveEntries });
  const out: ArchiveContents = { files: new Map(), links: new Map(), blobs: new Set() };
  let entries = 0;
  /** Bytes of documents held in memory so far: each is capped, and so is their sum. */
  let documentBytes = 0;
  for (;;) {
    const entry = await reader.next();
    if (entry === null) break;
    entries++;
    const p = archivePath(entry.name);
    if (p === '') continue;
    switch (entry.type) {
      case 'dir':
        continue;
      case 'symlink':
      case 'hardlink':
        out.links.set(p, linkTarget(p, entry.linkName, entry.type === 'hardlink'));
        continue;
      case 'file':
        break;
      default:
        throw invalidArgument(`archive entry ${JSON.stringify(p)} is a ${entry.type}; an image archive holds only files, directories and links`);
    }
    const blob = BLOB_PATH.exec(p);
    if (blob) {
      const [, alg, hex] = blob;
      if (alg !== 'sha256' || !isSha256Hex(hex)) {
        throw invalidArgument(`archive blob ${JSON.stringify(p)}: only sha256 digests are supported`);
      }
      const digest = digestOfHex(hex);
      try {
        // Verified against its name while it streams in; a mismatch stores nothing.
        await content.ingest({ digest, size: entry.size }, () => Readable.from(reader.body()));
      } catch (err) {
        if (err instanceof BerthError && err.kind === 'INVALID_ARGUMENT') {
          throw invalidArgument(`archive blob ${p} is corrupt: its content does not match its digest ${digest}`, err);
        }
        throw err;
      }
      out.files.set(p, { kind: 'blob', digest, size: entry.size });
      out.blobs.add(digest);
    } else if (isDocument(p)) {
      if (entry.size > MAX_MANIFEST_BYTES) {
        throw invalidArgument(`archive entry ${JSON.stringify(p)} is ${entry.size} bytes; over the ${MAX_MANIFEST_BYTES}-byte limit for documents`);
      }
      documentBytes += entry.size;
      if (documentBytes > Limits.archiveDocumentBytes) {
        throw invalidArgument(`the archive's JSON documents exceed the ${Limits.archiveDocumentBytes}-byte limit together`);
      }
      out.files.set(p, { kind: 'doc', data: await readAll(reader.body(), entry.size) });
    } else if (isLegacyLayer(p)) {
      const desc = await content.ingestUnnamed(Readable.from(reader.body()));
      if (desc.size !== entry.size) throw invalidArgument(`archive truncated inside ${JSON.stringify(p)}`);
      out.files.set(p, { kind: 'blob', ...desc });
      out.blobs.add(desc.digest);
    }
    // Anything else (VERSION, legacy per-layer json) is not needed and skipped unread.
  }
  if (entries === 0) throw invalidArgument('the archive is empty (or not a tar archive)');
  return out;
}

/** The file at archive path `p`, following links (bounded, so a loop can't hang us). */
export function resolveFile(contents: ArchiveContents, p: string): ArchiveFile | undefined {
  let cur = archivePath(p, 'archive reference');
  for (let hops = 0; hops < 16; hops++) {
    const f = contents.files.get(cur);
    if (f) return f;
    const next = contents.links.get(cur);
    if (next === undefined) return undefined;
    cur = next;
  }
  throw invalidArgument(`archive path ${JSON.stringify(p)}: too many levels of links`);
}
