// The image service: what the CRI ImageService RPCs delegate to. Owns the
// registry client, the content store and the image store, and uses the
// snapshotter for layers. Removal garbage-collects blobs and layer
// snapshots nothing else uses.
import * as path from 'node:path';
import type { BerthConfig } from '../config/config';
import { BerthError, errorMessage, failedPrecondition } from '../errors';
import type { Logger } from '../log/logger';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';
import { ContentStore } from '../content/store';
import type { CriAuthConfig } from '../registry/auth';
import { RegistryClient } from '../registry/client';
import type { ProxyConfig } from '../registry/proxy';
import { Leases, pullImage, type LayerObserver, type PullDeps, type PullProgress } from './pull';
import { digestOfHex, isSha256Digest } from '../oci/digest';
import { formatReference, parseReference } from '../oci/reference';
import type { LayerSnapshotter } from './snapshots';
import { ImageStore, type ImageRecord } from './store';

/**
 * Pulls run side by side; garbage collection runs alone. A layer that GC has
 * judged unused must not be picked up as "already there" by a pull while it
 * is being deleted, so GC waits for running pulls and new pulls wait for GC.
 * RemoveImage does not wait for a long pull: its collection is deferred until
 * the last running pull ends.
 */
class PullGcGate {
  private pulls = 0;
  private gc?: Promise<unknown>;
  private idleWaiters: Array<() => void> = [];
  private deferred?: () => Promise<unknown>;

  constructor(private readonly onDeferredError: (err: unknown) => void) {}

  async pull<T>(fn: () => Promise<T>): Promise<T> {
    while (this.gc) await this.gc.catch(() => undefined);
    this.pulls++;
    try {
      return await fn();
    } finally {
      this.pulls--;
      if (this.pulls === 0) this.becameIdle();
    }
  }

  /** Runs `fn` alone, once no pull is running. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.pulls > 0 || this.gc) {
      if (this.gc) await this.gc.catch(() => undefined);
      else await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    const p = fn();
    this.gc = p;
    try {
      return await p;
    } finally {
      this.gc = undefined;
    }
  }

  /** Runs `fn` alone now if nothing is pulling, else once the last pull ends. */
  async soon(fn: () => Promise<unknown>): Promise<void> {
    if (this.pulls === 0) {
      await this.exclusive(fn);
      return;
    }
    this.deferred = fn;
  }

  private becameIdle(): void {
    const deferred = this.deferred;
    this.deferred = undefined;
    if (deferred) this.exclusive(deferred).catch(this.onDeferredError);
    for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** The registry host a pull goes to (the metrics label); "invalid" for a reference that does not parse. */
function registryHostOf(image: string): string {
  try {
    return parseReference(image).domain;
  } catch {
    return 'invalid';
  }
}

/** The snapshotter with each layer application timed (berth_layer_unpack_duration_seconds). */
function timedLayers(s: LayerSnapshotter, metrics: RuntimeMetrics): LayerSnapshotter {
  return {
    hasCommitted: (c) => s.hasCommitted(c),
    applyLayer: (o) => metrics.unpack(() => s.applyLayer(o)),
    isApplying: (c) => s.isApplying(c),
    remove: (k) => s.remove(k),
    usage: () => s.usage(),
    list: () => s.list(),
  };
}

export interface ImageServiceOptions {
  /** Pulls (by registry host) and layer unpack times are counted here. */
  metrics: RuntimeMetrics;
  /** Attempts per registry request on retryable failures. */
  registryAttempts?: number;
  registryBackoffMs?: number;
  /** Proxies for registry traffic (berthd passes its environment's); none when absent. */
  proxies?: ProxyConfig;
}

export class ImageService {
  readonly content: ContentStore;
  readonly store: ImageStore;
  readonly registry: RegistryClient;
  private readonly leases = new Leases();
  private volumeUsers: (imageId: string) => string[] = () => [];
  private readonly metrics: RuntimeMetrics;
  private readonly logger: Logger;
  private readonly gate = new PullGcGate((err) => this.logger.warn('garbage collection failed', { error: errorMessage(err) }));

  constructor(
    private readonly config: BerthConfig,
    logger: Logger,
    readonly snapshotter: LayerSnapshotter,
    opts: ImageServiceOptions,
  ) {
    this.metrics = opts.metrics;
    this.logger = logger.child({ component: 'images' });
    this.content = new ContentStore(path.join(config.root, 'content'));
    this.store = new ImageStore(path.join(config.root, 'images'), this.logger);
    this.registry = new RegistryClient({
      configDir: config.image.registry_config_dir,
      credentials: config.image.credentials,
      progressTimeoutMs: config.image.progress_timeout_seconds * 1000,
      logger: this.logger,
      attempts: opts.registryAttempts,
      backoffMs: opts.registryBackoffMs,
      proxies: opts.proxies,
    });
  }

  /** Constructs and initialises (directories, records from disk). */
  static async open(config: BerthConfig, logger: Logger, snapshotter: LayerSnapshotter, opts: ImageServiceOptions): Promise<ImageService> {
    const s = new ImageService(config, logger, snapshotter, opts);
    await s.init();
    return s;
  }

  async init(): Promise<void> {
    await this.content.init();
    await this.store.init();
    // Blobs and layers of pulls a crash or restart cut short.
    const { blobs, snapshots } = await this.collectGarbage();
    if (blobs || snapshots) this.logger.info('removed leftovers of interrupted pulls', { blobs, snapshots });
  }

  close(): void {
    this.registry.close();
  }

  private get deps(): PullDeps {
    return {
      registry: this.registry,
      content: this.content,
      images: this.store,
      snapshotter: timedLayers(this.snapshotter, this.metrics),
      logger: this.logger,
      maxConcurrentDownloads: this.config.image.max_concurrent_downloads,
      leases: this.leases,
    };
  }

  /** Pulls `image` (any reference form) and returns its record; `signal` cancels it (ABORTED). */
  pull(image: string, auth?: CriAuthConfig, observe?: LayerObserver, progress?: PullProgress, signal?: AbortSignal): Promise<ImageRecord> {
    return this.metrics.pull(registryHostOf(image), (img) => img.size, () => this.gate.pull(() => pullImage(this.deps, image, auth, observe, progress, signal)));
  }

  /**
   * Runs `fn` the way a pull runs (garbage collection waits for it), with
   * the pull's stores, leases and layer applier: imports use it.
   */
  withPullDeps<T>(fn: (deps: PullDeps) => Promise<T>): Promise<T> {
    return this.gate.pull(() => fn(this.deps));
  }

  list(): ImageRecord[] {
    return this.store.list();
  }

  /** By id, id prefix, name:tag or name@digest. */
  lookup(refOrId: string): ImageRecord | undefined {
    return this.store.lookup(refOrId);
  }

  /** Pinned if config.image.pinned_images names it by any of its names or its id. */
  isPinned(img: ImageRecord): boolean {
    const pinned = this.pinnedNames();
    if (pinned.size === 0) return false;
    if (pinned.has(img.id)) return true;
    for (const n of img.repoTags) if (pinned.has(n)) return true;
    for (const n of img.repoDigests) if (pinned.has(n)) return true;
    return false;
  }

  /** config.image.pinned_images as ids and normalized references, parsed once (the config does not change). */
  private pinnedNames(): Set<string> {
    if (this.pinned) return this.pinned;
    const out = new Set<string>();
    for (const p of this.config.image.pinned_images) {
      out.add(p);
      out.add(digestOfHex(p));
      try {
        out.add(formatReference(parseReference(p)));
      } catch {
        // not a reference: an id only
      }
    }
    return (this.pinned = out);
  }
  private pinned?: Set<string>;

  /** The full image config document (OCI image spec), for verbose status. */
  async imageSpec(img: ImageRecord): Promise<unknown> {
    return JSON.parse((await this.content.read(img.id)).toString('utf8')) as unknown;
  }

  /**
   * Removes an image by any reference. Removing by tag while other tags
   * remain only untags; otherwise the image goes, then unused blobs and
   * snapshots are collected. Idempotent: a missing image is not an error.
   */
  async remove(refOrId: string): Promise<void> {
    const removed = await this.store.exclusive(async () => {
      const img = this.store.lookup(refOrId);
      if (!img) return undefined;
      let tag: string | undefined;
      try {
        const r = parseReference(refOrId);
        if (r.tag && img.repoTags.includes(formatReference(r))) tag = formatReference(r);
      } catch {
        tag = undefined;
      }
      if (tag && img.repoTags.length > 1) {
        await this.store.untag(img.id, tag);
        return undefined;
      }
      const users = this.volumeUsers(img.id);
      if (users.length > 0) {
        throw failedPrecondition(`image ${img.id} is mounted as an image volume by container(s) ${users.join(', ')}; remove them first`);
      }
      await this.store.delete(img.id);
      return img;
    });
    if (removed) {
      this.logger.info('image removed', { id: removed.id, tags: removed.repoTags });
      await this.gate.soon(() => this.collectNow());
    }
  }

  /**
   * Deletes blobs and committed layer snapshots that no image and no running
   * pull uses. Snapshots go top-down; one a container still sits on stays
   * (the snapshotter refuses) and is collected by a later run.
   */
  collectGarbage(): Promise<{ blobs: number; snapshots: number }> {
    return this.gate.exclusive(() => this.collectNow());
  }

  private async collectNow(): Promise<{ blobs: number; snapshots: number }> {
    // Asked afresh for each candidate: a pull may record an image (then drop its lease) meanwhile.
    const blobInUse = (b: string) => this.leases.has(b) || this.content.isIngesting(b) || this.store.list().some((i) => i.blobs.includes(b));
    const chainInUse = (c: string) => this.leases.has(c) || this.snapshotter.isApplying(c) || this.store.list().some((i) => i.chainIds.includes(c));
    let blobs = 0;
    for (const b of await this.content.list()) {
      if (blobInUse(b)) continue;
      await this.content.delete(b);
      blobs++;
    }
    let snapshots = 0;
    for (let progress = true; progress; ) {
      progress = false;
      const all = await this.snapshotter.list();
      const parents = new Set(all.map((s) => s.parent).filter((p): p is string => p !== undefined));
      for (const s of all) {
        if (s.kind !== 'committed' || !isSha256Digest(s.key) || parents.has(s.key)) continue;
        if (chainInUse(s.key)) continue;
        try {
          await this.snapshotter.remove(s.key);
          snapshots++;
          progress = true;
        } catch (err) {
          // Raced with a new child or a mount: it stays for a later run.
          if (!(err instanceof BerthError)) this.logger.warn('could not remove layer snapshot', { chainId: s.key, error: errorMessage(err) });
        }
      }
    }
    if (blobs || snapshots) this.logger.debug('garbage collected', { blobs, snapshots });
    return { blobs, snapshots };
  }

  /**
   * Who mounts an image as a volume (the daemon wires the container store in):
   * such an image is kept from RemoveImage, hence its layers from collection.
   */
  setVolumeUsers(users: (imageId: string) => string[]): void {
    this.volumeUsers = users;
  }

  /** Space and inodes used by image layers, for ImageFsInfo. */
  usage(): Promise<{ bytes: bigint; inodes: bigint; mountpoint: string }> {
    return this.snapshotter.usage();
  }
}
