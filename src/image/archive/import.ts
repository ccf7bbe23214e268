// `berth images import`: loads images from an archive into the stores, so a
// node without a registry can run them. Two formats:
//  - an OCI image layout (oci-layout, index.json, blobs/sha256/...), as
//    `skopeo copy ... oci-archive:` and newer `docker save` write; names come
//    from the io.containerd.image.name or org.opencontainers.image.ref.name
//    annotations of index.json; indexes are resolved to the host platform;
//  - a classic `docker save` archive (manifest.json with Config, RepoTags,
//    Layers), for which a Docker schema 2 manifest is written.
// The archive is read once; every blob is verified and stored; then every
// image is checked, its layers unpacked through the snapshotter (as a pull
// does) and only then are the images recorded, so a bad archive records
// nothing.
import * as fs from 'node:fs';
import { invalidArgument } from '../../errors';
import type { Logger } from '../../log/logger';
import type { ImageService } from '../service';
import { applyStoredLayers, imageRecordOf, loadImageConfig, type PullDeps } from '../pull';
import type { ImageRecord } from '../store';
import { chainIds } from '../../oci/chain_id';
import { digestOfHex, isSha256Hex, sha256Digest } from '../../oci/digest';
import { Annotation, MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type ImageManifest } from '../../oci/manifest';
import { compressionOf, MediaType } from '../../oci/media_types';
import { hostPlatform, runsOn, selectPlatform } from '../../oci/platform';
import { formatReference, parseReference, repositoryName } from '../../oci/reference';
import { isJsonObject } from '../../util/json';
import { readArchive, resolveFile, type ArchiveContents } from './entries';

export interface ImportedImage {
  id: string;
  /** Normalised names (name:tag, name@digest) the image now has from this import. */
  names: string[];
}

export interface ImportResult {
  images: ImportedImage[];
  /** Things skipped, such as names that are not references. */
  warnings: string[];
}

/** One image found in the archive, ready to be unpacked and recorded. */
interface PlannedImage {
  manifest: ImageManifest;
  manifestDigest: string;
  repoTags: string[];
  repoDigests: string[];
  blobs: string[];
}

function parseJson(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch {
    throw invalidArgument(`${what} in the archive is not valid JSON`);
  }
}

/**
 * Reads the archive from `source` and imports every image it holds. The
 * source is consumed with backpressure; no layer is held in memory.
 */
export async function importArchive(images: ImageService, source: AsyncIterable<Buffer | string>, logger: Logger): Promise<ImportResult> {
  return images.withPullDeps(async (deps) => {
    const started = Date.now();
    const contents = await readArchive(source, deps.content);
    const warnings: string[] = [];
    let planned: PlannedImage[];
    if (contents.files.has('index.json')) planned = await planOciLayout(deps, contents, warnings);
    else if (contents.files.has('manifest.json')) planned = await planDockerSave(deps, contents);
    else throw invalidArgument('not an image archive: it has neither index.json (OCI image layout) nor manifest.json (docker save)');
    if (planned.length === 0) throw invalidArgument(`the archive holds no image for platform ${hostPlatform().os}/${hostPlatform().architecture}`);

    // Check and unpack everything before recording anything.
    const records: ImageRecord[] = [];
    for (const p of planned) {
      const what = p.repoTags[0] ?? p.repoDigests[0] ?? p.manifestDigest;
      for (const d of [p.manifest.config, ...p.manifest.layers]) {
        if (!deps.content.has(d.digest)) throw invalidArgument(`${what}: the archive lacks blob ${d.digest}`);
        if (deps.content.size(d.digest) !== d.size) throw invalidArgument(`${what}: blob ${d.digest} is not ${d.size} bytes as its descriptor says`);
      }
      for (const l of p.manifest.layers) compressionOf(l.mediaType || MediaType.DockerLayerGzip);
      const config = await loadImageConfig(deps.content, p.manifest, what);
      await applyStoredLayers(deps, p.manifest.layers, config.diffIds, chainIds(config.diffIds), MediaType.DockerLayerGzip);
      records.push(imageRecordOf({ ...p, config }));
    }
    const result: ImportResult = { images: [], warnings };
    await deps.images.exclusive(async () => {
      for (const r of records) {
        const saved = await deps.images.record(r);
        result.images.push({ id: saved.id, names: [...r.repoTags, ...r.repoDigests] });
      }
    });
    logger.info('images imported', { images: result.images.map((i) => ({ id: i.id, names: i.names })), ms: Date.now() - started });
    return result;
  });
}

/** A manifest or index stored by the archive, parsed. */
async function readManifestBlob(deps: PullDeps, d: Descriptor): Promise<ReturnType<typeof parseManifest>> {
  const size = deps.content.size(d.digest);
  if (size === undefined) throw invalidArgument(`the archive lacks blob ${d.digest} (named by index.json or an index)`);
  if (size !== d.size) throw invalidArgument(`blob ${d.digest} is ${size} bytes, not ${d.size} as its descriptor says`);
  // Read into memory: bounded like a manifest from a registry.
  if (size > MAX_MANIFEST_BYTES) throw invalidArgument(`manifest ${d.digest} is ${size} bytes; manifests are limited to ${MAX_MANIFEST_BYTES}`);
  return parseManifest(await deps.content.read(d.digest), d.mediaType);
}

function nameOf(annotations: Record<string, unknown>, warnings: string[]): string | undefined {
  const full = annotations[Annotation.ImageName];
  const ref = annotations[Annotation.RefName];
  const candidate = typeof full === 'string' && full ? full : typeof ref === 'string' && ref ? ref : undefined;
  if (candidate === undefined) return undefined;
  // A bare ref.name ("1", "latest") is a tag without a repository (newer docker save writes those beside the full name).
  if (candidate === ref && !/[/:@]/.test(candidate)) {
    warnings.push(`ignored ref.name ${JSON.stringify(candidate)}: a bare tag names no repository`);
    return undefined;
  }
  try {
    return formatReference(parseReference(candidate));
  } catch (err) {
    warnings.push(`ignored name ${JSON.stringify(candidate)}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

async function planOciLayout(deps: PullDeps, contents: ArchiveContents, warnings: string[]): Promise<PlannedImage[]> {
  const layout = resolveFile(contents, 'oci-layout');
  if (layout?.kind === 'doc') {
    const doc = parseJson(layout.data, 'oci-layout');
    const version = isJsonObject(doc) ? doc.imageLayoutVersion : undefined;
    if (typeof version !== 'string' || !version.startsWith('1.')) {
      throw invalidArgument(`unsupported OCI image layout version ${JSON.stringify(version)}`);
    }
  }
  const indexFile = resolveFile(contents, 'index.json');
  if (indexFile?.kind !== 'doc') throw invalidArgument('index.json of the archive is not a file');
  const rawIndex = parseJson(indexFile.data, 'index.json');
  const index = parseManifest(indexFile.data, MediaType.OciIndex);
  if (index.kind !== 'index') throw invalidArgument('index.json of the archive is not an OCI image index');
  const rawManifests = isJsonObject(rawIndex) && Array.isArray(rawIndex.manifests) ? rawIndex.manifests : [];
  const host = hostPlatform();

  // Entries naming the same target merge; the target decides what is imported.
  const byTarget = new Map<string, { desc: Descriptor; names: string[] }>();
  index.manifests.forEach((desc, i) => {
    const raw: unknown = rawManifests[i];
    const annotations = isJsonObject(raw) && isJsonObject(raw.annotations) ? raw.annotations : {};
    const name = nameOf(annotations, warnings);
    const entry = byTarget.get(desc.digest) ?? { desc, names: [] };
    if (name && !entry.names.includes(name)) entry.names.push(name);
    byTarget.set(desc.digest, entry);
  });

  const planned: PlannedImage[] = [];
  for (const { desc, names } of byTarget.values()) {
    if (desc.platform && !runsOn(desc.platform, host)) {
      warnings.push(`skipped ${desc.digest}: it is for ${desc.platform.os}/${desc.platform.architecture}`);
      continue;
    }
    let top = await readManifestBlob(deps, desc);
    let manifestDigest = desc.digest;
    const blobs = [desc.digest];
    if (top.kind === 'index') {
      const chosen = selectPlatform(top);
      top = await readManifestBlob(deps, chosen);
      manifestDigest = chosen.digest;
      blobs.push(chosen.digest);
      if (top.kind === 'index') throw invalidArgument(`${names[0] ?? desc.digest}: nested image indexes are not supported`);
    }
    const m = top;
    const tags: string[] = [];
    const digests: string[] = [];
    for (const n of names) {
      const ref = parseReference(n);
      if (ref.digest) digests.push(n);
      else {
        tags.push(n);
        // As after a pull: the name's repository at the digest the name pointed to.
        digests.push(`${repositoryName(ref)}@${desc.digest}`);
      }
    }
    planned.push({
      manifest: m,
      manifestDigest,
      repoTags: tags,
      repoDigests: [...new Set(digests)],
      blobs: [...blobs, m.config.digest, ...m.layers.map((l) => l.digest)],
    });
  }
  return planned;
}

/** The layer media type of a stored legacy layer, from its first bytes. */
async function sniffLayerType(path: string): Promise<string> {
  const fh = await fs.promises.open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return MediaType.DockerLayerGzip;
    if (head.readUInt32LE(0) === 0xfd2fb528) return MediaType.OciLayerZstd;
    return MediaType.DockerLayer;
  } finally {
    await fh.close();
  }
}

async function planDockerSave(deps: PullDeps, contents: ArchiveContents): Promise<PlannedImage[]> {
  const mf = resolveFile(contents, 'manifest.json');
  if (mf?.kind !== 'doc') throw invalidArgument('manifest.json of the archive is not a file');
  const doc = parseJson(mf.data, 'manifest.json');
  if (!Array.isArray(doc)) throw invalidArgument('manifest.json of the archive is not a list of images');
  const planned: PlannedImage[] = [];
  for (const [i, item] of doc.entries()) {
    if (!isJsonObject(item) || typeof item.Config !== 'string' || !Array.isArray(item.Layers)) {
      throw invalidArgument(`manifest.json entry ${i} has no Config and Layers`);
    }
    const configFile = resolveFile(contents, item.Config);
    if (!configFile) throw invalidArgument(`manifest.json entry ${i}: the archive lacks its config ${JSON.stringify(item.Config)}`);
    let config: Descriptor;
    if (configFile.kind === 'doc') {
      const digest = sha256Digest(configFile.data);
      // Classic docker save names the config <hex of its digest>.json: hold it to that.
      const base = item.Config.split('/').pop() ?? '';
      const named = base.endsWith('.json') && isSha256Hex(base.slice(0, -'.json'.length)) ? digestOfHex(base.slice(0, -'.json'.length)) : undefined;
      if (named && named !== digest) {
        throw invalidArgument(`archive config ${item.Config} is corrupt: its content does not match its digest ${named}`);
      }
      await deps.content.put({ digest, size: configFile.data.length }, configFile.data);
      config = { mediaType: MediaType.DockerConfig, digest, size: configFile.data.length };
    } else {
      config = { mediaType: MediaType.DockerConfig, digest: configFile.digest, size: configFile.size };
    }
    const layers: Descriptor[] = [];
    for (const l of item.Layers) {
      if (typeof l !== 'string') throw invalidArgument(`manifest.json entry ${i} has a layer that is not a path`);
      const f = resolveFile(contents, l);
      if (!f || f.kind !== 'blob') throw invalidArgument(`manifest.json entry ${i}: the archive lacks layer ${JSON.stringify(l)}`);
      layers.push({ mediaType: await sniffLayerType(deps.content.path(f.digest)), digest: f.digest, size: f.size });
    }
    const manifest: ImageManifest = { kind: 'manifest', mediaType: MediaType.DockerManifest, config, layers };
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
        layers: layers.map((d) => ({ mediaType: d.mediaType, size: d.size, digest: d.digest })),
      }),
    );
    const manifestDigest = sha256Digest(body);
    await deps.content.put({ digest: manifestDigest, size: body.length }, body);
    const repoTags: string[] = [];
    for (const t of Array.isArray(item.RepoTags) ? item.RepoTags : []) {
      if (typeof t !== 'string') continue;
      // docker save writes familiar names ("busybox:1"): normalise them.
      const ref = parseReference(t);
      if (!ref.digest) repoTags.push(formatReference(ref));
    }
    planned.push({
      manifest,
      manifestDigest,
      repoTags: [...new Set(repoTags)],
      // The manifest was written here, never pushed: no registry knows this digest.
      repoDigests: [],
      blobs: [manifestDigest, config.digest, ...layers.map((d) => d.digest)],
    });
  }
  return planned;
}
