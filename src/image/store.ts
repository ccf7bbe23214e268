// Durable image records, one JSON file per image at <root>/<id hex>.json,
// written atomically (temp + fsync + rename). An image's id is its config
// digest; names point at it as tags (name:tag) and repo digests
// (name@sha256:<manifest or index digest>). A tag names one image at a time.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, invalidArgument } from '../errors';
import type { Logger } from '../log/logger';
import { digestOfHex, hexOf, isHexPrefix, isSha256Digest, isSha256Hex, stripAlgorithm } from '../oci/digest';
import { formatReference, parseReference } from '../oci/reference';
import { fsyncDir, writeFileAtomic } from '../util/atomic_file';
import { KeyedMutex } from '../util/keyed_mutex';

export interface LayerRecord {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

/** The parts of the image config (OCI image spec "config") containers are built from. */
export interface ImageRuntimeConfig {
  user: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  stopSignal: string;
  volumes: string[];
  labels: Record<string, string>;
  exposedPorts: string[];
}

export interface ImageRecord {
  /** Config digest, "sha256:<hex>". */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Compressed layers plus config, as containerd reports. */
  size: number;
  layers: LayerRecord[];
  chainIds: string[];
  /** The platform manifest's digest. */
  manifestDigest: string;
  /** Every content-store blob this image needs (indexes, manifest, config, layers). */
  blobs: string[];
  config: ImageRuntimeConfig;
  os: string;
  architecture: string;
  createdAt: string;
}

/** Pulls the runtime config out of an image config document, tolerating absent fields. */
export function runtimeConfigOf(doc: unknown): ImageRuntimeConfig {
  const root = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  const c = (typeof root.config === 'object' && root.config !== null ? root.config : {}) as Record<string, unknown>;
  const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const keys = (v: unknown): string[] => (typeof v === 'object' && v !== null ? Object.keys(v) : []);
  const labels: Record<string, string> = {};
  if (typeof c.Labels === 'object' && c.Labels !== null) {
    for (const [k, v] of Object.entries(c.Labels)) if (typeof v === 'string') labels[k] = v;
  }
  return {
    user: str(c.User),
    env: strs(c.Env),
    entrypoint: strs(c.Entrypoint),
    cmd: strs(c.Cmd),
    workingDir: str(c.WorkingDir),
    stopSignal: str(c.StopSignal),
    volumes: keys(c.Volumes),
    labels,
    exposedPorts: keys(c.ExposedPorts),
  };
}

export class ImageStore {
  private readonly images = new Map<string, ImageRecord>();
  /** One key: the whole store is the unit of exclusion. */
  private readonly lock = new KeyedMutex();

  constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {}

  async init(): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await fs.promises.readdir(this.dir)) {
      const file = path.join(this.dir, name);
      if (name.includes('.tmp-')) {
        await fs.promises.rm(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json') || !isSha256Hex(name.slice(0, -'.json'.length))) continue;
      try {
        const rec = JSON.parse(await fs.promises.readFile(file, 'utf8')) as ImageRecord;
        if (typeof rec.id !== 'string' || !Array.isArray(rec.repoTags)) throw new Error('not an image record');
        this.images.set(rec.id, rec);
      } catch (err) {
        // A damaged record must not keep the daemon from starting; the image can be pulled again.
        this.logger.warn('ignoring unreadable image record', { file, error: errorMessage(err) });
      }
    }
  }

  /** Runs `fn` with the store to itself: tag moves must not interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run('images', fn);
  }

  list(): ImageRecord[] {
    return [...this.images.values()];
  }

  get(id: string): ImageRecord | undefined {
    return this.images.get(id);
  }

  /**
   * Finds an image by full id ("sha256:<hex>" or "<hex>"), by name:tag, by
   * name@digest, or by an unambiguous id prefix. Undefined if none.
   */
  lookup(refOrId: string): ImageRecord | undefined {
    const s = refOrId.trim();
    if (!s) return undefined;
    const byId = this.images.get(s) ?? (isSha256Hex(s) ? this.images.get(digestOfHex(s)) : undefined);
    if (byId) return byId;
    let normalized: string | undefined;
    try {
      normalized = formatReference(parseReference(s));
    } catch {
      normalized = undefined;
    }
    if (normalized) {
      for (const img of this.images.values()) {
        if (img.repoTags.includes(normalized) || img.repoDigests.includes(normalized)) return img;
      }
    }
    const prefix = stripAlgorithm(s);
    if (isHexPrefix(prefix)) {
      const matches = this.list().filter((img) => stripAlgorithm(img.id).startsWith(prefix));
      if (matches.length === 1) return matches[0];
    }
    return undefined;
  }

  /**
   * Records a pulled image, or merges new names into the existing record.
   * A tag that named another image is moved here. Call inside exclusive().
   */
  async record(image: ImageRecord): Promise<ImageRecord> {
    const existing = this.images.get(image.id);
    const merged: ImageRecord = existing
      ? {
          ...existing,
          repoTags: [...new Set([...existing.repoTags, ...image.repoTags])],
          repoDigests: [...new Set([...existing.repoDigests, ...image.repoDigests])],
          blobs: [...new Set([...existing.blobs, ...image.blobs])],
        }
      : image;
    for (const other of this.images.values()) {
      if (other.id === merged.id) continue;
      const kept = other.repoTags.filter((t) => !merged.repoTags.includes(t));
      if (kept.length !== other.repoTags.length) await this.write({ ...other, repoTags: kept });
    }
    await this.write(merged);
    return merged;
  }

  /** Removes one tag from an image. Call inside exclusive(). */
  async untag(id: string, tag: string): Promise<ImageRecord | undefined> {
    const img = this.images.get(id);
    if (!img) return undefined;
    const updated = { ...img, repoTags: img.repoTags.filter((t) => t !== tag) };
    await this.write(updated);
    return updated;
  }

  /** Deletes an image record. Call inside exclusive(). */
  async delete(id: string): Promise<void> {
    if (!isSha256Digest(id)) throw invalidArgument(`"${id}" is not an image id`);
    this.images.delete(id);
    try {
      await fs.promises.rm(this.fileOf(id));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    await fsyncDir(this.dir);
  }

  private fileOf(id: string): string {
    return path.join(this.dir, `${hexOf(id)}.json`);
  }

  private async write(img: ImageRecord): Promise<void> {
    await writeFileAtomic(this.fileOf(img.id), JSON.stringify(img, null, 1));
    this.images.set(img.id, img);
  }
}
