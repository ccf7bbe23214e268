// Image records, one JSON file per image at <root>/<id hex>.json, in the one
// record store. An image's id is its config
// digest; names point at it as tags (name:tag) and repo digests
// (name@sha256:<manifest or index digest>). A tag names one image at a time.
import { invalidArgument } from '../errors';
import type { Logger } from '../log/logger';
import { digestOfHex, hexOf, isHexPrefix, isSha256Digest, isSha256Hex, stripAlgorithm } from '../oci/digest';
import { formatReference, parseReference } from '../oci/reference';
import { RecordStore } from '../store/record_store';
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
  private readonly records: RecordStore<ImageRecord>;
  /** One key: the whole store is the unit of exclusion. */
  private readonly lock = new KeyedMutex();

  /** Changes whenever an image is recorded, renamed or deleted. */
  get generation(): number {
    return this.records.generation;
  }

  constructor(
    readonly dir: string,
    logger: Logger,
  ) {
    // Files are named by the config digest's hex; the id keeps its "sha256:".
    this.records = new RecordStore<ImageRecord>({
      dir,
      what: 'image',
      logger,
      fileKeyOf: hexOf,
      idOfFileKey: (key) => (isSha256Hex(key) ? digestOfHex(key) : undefined),
    });
  }

  /** Loads the records; a damaged one is skipped with a warning (the image can be pulled again). */
  async init(): Promise<void> {
    this.records.load();
  }

  /** Runs `fn` with the store to itself: tag moves must not interleave. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run('images', fn);
  }

  list(): ImageRecord[] {
    return this.records.list();
  }

  get(id: string): ImageRecord | undefined {
    return this.records.get(id);
  }

  /**
   * Finds an image by full id ("sha256:<hex>" or "<hex>"), by name:tag, by
   * name@digest, or by an unambiguous id prefix. Undefined if none.
   */
  lookup(refOrId: string): ImageRecord | undefined {
    const s = refOrId.trim();
    if (!s) return undefined;
    const byId = this.records.get(s) ?? (isSha256Hex(s) ? this.records.get(digestOfHex(s)) : undefined);
    if (byId) return byId;
    let normalized: string | undefined;
    try {
      normalized = formatReference(parseReference(s));
    } catch {
      normalized = undefined;
    }
    if (normalized) {
      const named = normalized;
      const [img] = this.records.list((i) => i.repoTags.includes(named) || i.repoDigests.includes(named));
      if (img) return img;
    }
    const prefix = stripAlgorithm(s);
    if (isHexPrefix(prefix)) {
      const matches = this.records.list((img) => stripAlgorithm(img.id).startsWith(prefix));
      if (matches.length === 1) return matches[0];
    }
    return undefined;
  }

  /**
   * Records a pulled image, or merges new names into the existing record.
   * A tag that named another image is moved here. Call inside exclusive().
   */
  async record(image: ImageRecord): Promise<ImageRecord> {
    const existing = this.records.get(image.id);
    for (const other of this.records.list((o) => o.id !== image.id)) {
      if (other.repoTags.some((t) => image.repoTags.includes(t))) {
        await this.records.update(other.id, (o) => (o.repoTags = o.repoTags.filter((t) => !image.repoTags.includes(t))));
      }
    }
    if (!existing) {
      await this.records.create(image);
      return image;
    }
    const union = (a: string[], b: string[]): string[] => [...new Set([...a, ...b])];
    return this.records.update(image.id, (img) => {
      img.repoTags = union(img.repoTags, image.repoTags);
      img.repoDigests = union(img.repoDigests, image.repoDigests);
      img.blobs = union(img.blobs, image.blobs);
    });
  }

  /** Removes one tag from an image. Call inside exclusive(). */
  async untag(id: string, tag: string): Promise<ImageRecord | undefined> {
    if (!this.records.get(id)) return undefined;
    return this.records.update(id, (img) => (img.repoTags = img.repoTags.filter((t) => t !== tag)));
  }

  /** Deletes an image record. Call inside exclusive(). */
  async delete(id: string): Promise<void> {
    if (!isSha256Digest(id)) throw invalidArgument(`"${id}" is not an image id`);
    await this.records.delete(id);
  }
}
