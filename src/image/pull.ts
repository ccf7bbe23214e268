// Pulling an image: resolve the reference, fetch manifest and config into
// the content store, download every layer (verified) and apply them through
// the snapshotter, then record the image. Every layer is unpacked while it
// downloads (the bytes are teed into the snapshotter, which unpacks them in a
// worker thread), several layers at once; the snapshotter commits them in
// chain order, each only once its digest and diffID are verified.
import { PassThrough, Transform, type Readable } from 'node:stream';
import { aborted, failedPrecondition, invalidArgument, notFound, type BerthError } from '../errors';
import type { Logger } from '../log/logger';
import type { ContentStore } from '../content/store';
import type { CriAuthConfig } from '../registry/auth';
import type { RegistryClient, RegistrySession } from '../registry/client';
import { chainIds as computeChainIds } from '../oci/chain_id';
import { MAX_CONFIG_BYTES, parseImageConfig, parseManifest, type Descriptor, type ImageConfig, type ImageManifest } from '../oci/manifest';
import { isLayerMediaType, MediaType } from '../oci/media_types';
import { hostPlatform, runsOn, selectPlatform } from '../oci/platform';
import { formatReference, parseReference, repositoryName } from '../oci/reference';
import type { LayerSnapshotter } from './snapshots';
import { runtimeConfigOf, type ImageRecord, type ImageStore } from './store';

/** Digests and chain IDs in use by running pulls: garbage collection leaves them alone. */
export class Leases {
  private readonly held = new Map<string, number>();

  hold(keys: Iterable<string>): () => void {
    const list = [...keys];
    for (const k of list) this.held.set(k, (this.held.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of list) {
        const n = (this.held.get(k) ?? 1) - 1;
        if (n <= 0) this.held.delete(k);
        else this.held.set(k, n);
      }
    };
  }

  has(key: string): boolean {
    return this.held.has(key);
  }
}

export interface PullDeps {
  registry: RegistryClient;
  content: ContentStore;
  images: ImageStore;
  snapshotter: LayerSnapshotter;
  logger: Logger;
  maxConcurrentDownloads: number;
  leases: Leases;
}

/** How each layer of a pull was obtained: unpacked while downloading, unpacked from the content store, or already there. */
export type LayerOutcome = 'streamed' | 'from-store' | 'present';
export type LayerObserver = (index: number, chainId: string, outcome: LayerOutcome) => void;

/** What `berth pull` shows: the layers once known, bytes as they arrive, each layer's end. */
export interface PullProgress {
  layers(layers: ReadonlyArray<{ digest: string; size: number }>): void;
  /** Bytes of layer `index` received so far from the registry (counted again on a resumed download). */
  received(index: number, bytes: number): void;
  layerDone(index: number, outcome: LayerOutcome): void;
}

/** A pull's cancellation: its client went away. Checked between steps; stops the pull's own downloads. */
class PullCancel {
  constructor(
    private readonly image: string,
    private readonly signal?: AbortSignal,
  ) {}

  private error(): BerthError {
    return aborted(`pull of ${this.image} cancelled: the client went away`);
  }

  check(): void {
    if (this.signal?.aborted) throw this.error();
  }

  /** Destroys `stream` (a download) with ABORTED when the pull is cancelled. */
  watch(stream: Readable): Readable {
    const signal = this.signal;
    if (signal === undefined) return stream;
    if (signal.aborted) {
      stream.destroy(this.error());
      return stream;
    }
    const stop = () => stream.destroy(this.error());
    signal.addEventListener('abort', stop, { once: true });
    stream.once('close', () => signal.removeEventListener('abort', stop));
    return stream;
  }
}

/** Counts the bytes flowing through, for progress; does not change them. */
function counting(source: NodeJS.ReadableStream, onBytes: (total: number) => void): NodeJS.ReadableStream {
  let total = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      onBytes(total);
      cb(null, chunk);
    },
  });
  source.on('error', (err: Error) => t.destroy(err));
  return source.pipe(t);
}

/** Runs `tasks` with at most `limit` at once, starting them in order. */
function limited<T>(tasks: Array<() => Promise<T>>, limit: number): Array<Promise<T>> {
  let next = 0;
  const results: Array<Promise<T>> = [];
  const starters: Array<(v: void) => void> = [];
  const gates = tasks.map(() => new Promise<void>((r) => starters.push(r)));
  const startNext = () => {
    if (next < tasks.length) starters[next++]();
  };
  tasks.forEach((task, i) => {
    const p = gates[i].then(task);
    p.then(startNext, startNext);
    results.push(p);
  });
  for (let i = 0; i < Math.min(limit, tasks.length); i++) startNext();
  return results;
}

export async function pullImage(
  deps: PullDeps,
  image: string,
  auth?: CriAuthConfig,
  observe?: LayerObserver,
  progress?: PullProgress,
  signal?: AbortSignal,
): Promise<ImageRecord> {
  const ref = parseReference(image);
  const log = deps.logger.child({ image: formatReference(ref) });
  const session = deps.registry.session(ref, auth);
  const started = Date.now();
  const cancel = new PullCancel(formatReference(ref), signal);

  cancel.check();
  const top = await session.resolve();
  const blobs = [top.digest];
  const release = deps.leases.hold(blobs);
  const held: Array<() => void> = [release];
  try {
    await deps.content.put({ digest: top.digest, size: top.body.length }, top.body);
    let manifest = parseManifest(top.body, top.mediaType);
    let manifestDigest = top.digest;
    if (manifest.kind === 'index') {
      const chosen = selectPlatform(manifest);
      const m = await session.fetchManifest(chosen.digest);
      held.push(deps.leases.hold([m.digest]));
      blobs.push(m.digest);
      await deps.content.put({ digest: m.digest, size: m.body.length }, m.body);
      manifest = parseManifest(m.body, chosen.mediaType || m.mediaType);
      manifestDigest = m.digest;
      if (manifest.kind === 'index') throw invalidArgument(`${formatReference(ref)}: nested image indexes are not supported`);
    }
    const m: ImageManifest = manifest;
    for (const l of m.layers) {
      if (l.mediaType === MediaType.OciLayerZstd) throw failedPrecondition(`${formatReference(ref)}: zstd-compressed layers are not supported`);
      if (l.mediaType && !isLayerMediaType(l.mediaType)) throw invalidArgument(`${formatReference(ref)}: unsupported layer media type "${l.mediaType}"`);
    }

    held.push(deps.leases.hold([m.config.digest]));
    blobs.push(m.config.digest);
    if (!deps.content.has(m.config.digest)) {
      // Through the capped path of manifests: refused before any request when
      // the descriptor announces too much, and never read past the cap.
      const body = await session.fetchSmallBlob(m.config, MAX_CONFIG_BYTES, `${formatReference(ref)}: image config`);
      await deps.content.put(m.config, body);
    }
    cancel.check();
    const config = await loadImageConfig(deps.content, m, formatReference(ref));
    const chain = computeChainIds(config.diffIds);
    held.push(deps.leases.hold([...m.layers.map((l) => l.digest), ...chain]));
    blobs.push(...m.layers.map((l) => l.digest));

    progress?.layers(m.layers.map((l) => ({ digest: l.digest, size: l.size })));
    const observeAll: LayerObserver = (i, chainId, outcome) => {
      observe?.(i, chainId, outcome);
      progress?.layerDone(i, outcome);
    };
    await fetchAndApplyLayers(deps, session, m.layers, config.diffIds, chain, observeAll, cancel, progress);
    cancel.check();

    const record = imageRecordOf({
      manifest: m,
      manifestDigest,
      config,
      repoTags: ref.tag ? [formatReference(ref)] : [],
      repoDigests: [`${repositoryName(ref)}@${top.digest}`],
      blobs,
    });
    const saved = await deps.images.exclusive(() => deps.images.record(record));
    log.info('image pulled', { id: saved.id, layers: m.layers.length, size: record.size, ms: Date.now() - started });
    return saved;
  } finally {
    for (const r of held) r();
  }
}

/**
 * Reads the config of `m` from the content store and checks it against the
 * manifest and this host's platform.
 */
export async function loadImageConfig(content: ContentStore, m: ImageManifest, what: string): Promise<ImageConfig> {
  // Stored configs came through a capped path, but an archive or an older berth may have stored a bigger one.
  const size = content.size(m.config.digest) ?? m.config.size;
  if (size > MAX_CONFIG_BYTES) throw invalidArgument(`${what}: the image config is ${size} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  const config = parseImageConfig(await content.read(m.config.digest), m.config.digest);
  if (config.diffIds.length !== m.layers.length) {
    throw invalidArgument(`${what}: the manifest has ${m.layers.length} layers but the config lists ${config.diffIds.length} diff IDs`);
  }
  const host = hostPlatform();
  if (!runsOn(config, host)) {
    // As containerd: a single-platform image for another platform cannot run here.
    throw notFound(`${what}: no match for platform ${host.os}/${host.architecture} (the image is ${config.os}/${config.architecture})`);
  }
  return config;
}

/** The record of an image whose blobs are stored and layers committed. */
export function imageRecordOf(args: {
  manifest: ImageManifest;
  manifestDigest: string;
  config: ImageConfig;
  repoTags: string[];
  repoDigests: string[];
  blobs: string[];
}): ImageRecord {
  const { manifest: m, config } = args;
  return {
    id: m.config.digest,
    repoTags: args.repoTags,
    repoDigests: args.repoDigests,
    size: m.config.size + m.layers.reduce((n, l) => n + l.size, 0),
    layers: m.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: config.diffIds[i] })),
    chainIds: computeChainIds(config.diffIds),
    manifestDigest: args.manifestDigest,
    blobs: [...new Set(args.blobs)],
    config: runtimeConfigOf(config.raw),
    os: config.os,
    architecture: config.architecture,
    createdAt: new Date().toISOString(),
  };
}

/**
 * Applies, in order, the layers not yet committed, from blobs already in the
 * content store (an import stores every blob before unpacking).
 */
export async function applyStoredLayers(deps: PullDeps, layers: Descriptor[], diffIds: string[], chain: string[], defaultMediaType: string): Promise<void> {
  for (let i = 0; i < layers.length; i++) {
    if (deps.snapshotter.hasCommitted(chain[i])) continue;
    // The snapshotter joins an apply of the same layer already running (another pull or import).
    await deps.snapshotter.applyLayer({
      chainId: chain[i],
      parentChainId: i > 0 ? chain[i - 1] : undefined,
      diffId: diffIds[i],
      mediaType: layers[i].mediaType || defaultMediaType,
      stream: deps.content.openRead(layers[i].digest),
    });
  }
}

/** A promise settled from outside, with its rejection marked handled (it may be awaited late or not at all). */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T | Promise<T>) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T | Promise<T>) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * Downloads every layer (at most maxConcurrentDownloads at once) and unpacks
 * each while it downloads, all of them at the same time, each into its own
 * directory; the snapshotter commits them in chain order (a layer waits for
 * its parent's commit, not its parent's unpack). A download's slot is freed
 * once its bytes are in; its unpack finishes (and waits to commit) outside it.
 */
async function fetchAndApplyLayers(
  deps: PullDeps,
  session: RegistrySession,
  layers: Descriptor[],
  diffIds: string[],
  chain: string[],
  observe: LayerObserver,
  cancel: PullCancel,
  progress?: PullProgress,
): Promise<void> {
  const { content, snapshotter } = deps;
  // committed[i] settles once layer i is committed (or found committed), or has failed.
  const committed = layers.map(() => deferred<LayerOutcome>());
  const apply = (i: number, stream: NodeJS.ReadableStream) =>
    snapshotter.applyLayer({
      chainId: chain[i],
      parentChainId: i > 0 ? chain[i - 1] : undefined,
      diffId: diffIds[i],
      mediaType: layers[i].mediaType || MediaType.DockerLayerGzip,
      stream,
      parentReady: i > 0 ? committed[i - 1].promise : undefined,
    });

  const download = async (i: number): Promise<void> => {
    const desc = layers[i];
    cancel.check();
    const fetchBlob = () => cancel.watch(session.openBlob(desc));
    const open = () => (progress ? (counting(fetchBlob(), (n) => progress.received(i, n)) as Readable) : fetchBlob());
    const fromStore = async (): Promise<void> => {
      await content.ingest(desc, open);
      cancel.check();
      committed[i].resolve(snapshotter.hasCommitted(chain[i]) ? 'present' : apply(i, content.openRead(desc.digest)).then(() => 'from-store' as const));
    };
    const canTee =
      !snapshotter.hasCommitted(chain[i]) && !snapshotter.isApplying(chain[i]) && !content.has(desc.digest) && !content.isIngesting(desc.digest);
    if (!canTee) return fromStore();
    const pass = new PassThrough();
    const applied = apply(i, pass);
    // An apply that ends without reading everything must not stall the download.
    const settled = applied.then(
      () => undefined,
      (err: unknown) => err,
    );
    void settled.then(() => {
      if (!pass.readableEnded) pass.destroy();
    });
    let teed: boolean;
    try {
      ({ teed } = await content.ingest(desc, open, pass));
    } catch (err) {
      // The apply reading `pass` fails too: wait until it has removed its
      // half-done extraction, so a failed pull leaves nothing behind.
      pass.destroy();
      await settled;
      throw err;
    }
    if (!teed) {
      // Someone else stored it meanwhile: our apply got nothing; apply from the file instead.
      pass.destroy();
      await settled;
      return fromStore();
    }
    committed[i].resolve(applied.then(() => 'streamed' as const));
  };

  const downloads = limited(
    layers.map((_, i) => () => download(i).catch((err: unknown) => committed[i].reject(err))),
    deps.maxConcurrentDownloads,
  );
  try {
    // Failures surface in layer order.
    for (let i = 0; i < layers.length; i++) observe(i, chain[i], await committed[i].promise);
  } catch (err) {
    // A failed pull returns only once every transfer and unpack it started has
    // settled, so nothing of it is still being written when the caller looks.
    await Promise.allSettled([...downloads, ...committed.map((c) => c.promise)]);
    throw err;
  }
}
