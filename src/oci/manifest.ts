// The documents of an image: manifests (Docker schema 2, OCI) and indexes
// (Docker manifest lists, OCI indexes), their descriptors and annotations,
// and the image config's fields we rely on. Parsing validates every digest
// and size; schema 1 is refused with advice.
import { failedPrecondition, invalidArgument } from '../errors';
import { Limits } from '../limits';
import { isJsonObject } from '../util/json';
import { isSha256Digest } from './digest';
import { MediaType } from './media_types';
import type { Platform } from './platform';

/** The most a manifest or index may weigh: it is read into memory (src/limits.ts). */
export const MAX_MANIFEST_BYTES = Limits.manifestBytes;
/** The most an image config may weigh: read into memory and parsed like a manifest. */
export const MAX_CONFIG_BYTES = Limits.imageConfigBytes;

/** Index annotations naming an image: containerd's full name, and the OCI one (often only a tag). */
export const Annotation = {
  ImageName: 'io.containerd.image.name',
  RefName: 'org.opencontainers.image.ref.name',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  urls?: string[];
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isJsonObject(v)) throw invalidArgument(`malformed manifest: ${what} is not an object`);
  const { mediaType, digest, size, platform, urls } = v;
  if (typeof digest !== 'string' || !isSha256Digest(digest))
    throw invalidArgument(`malformed manifest: ${what} has no valid sha256 digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalidArgument(`malformed manifest: ${what} has no valid size`);
  const d: Descriptor = { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
  if (isJsonObject(platform) && typeof platform.architecture === 'string' && typeof platform.os === 'string') {
    d.platform = {
      architecture: platform.architecture,
      os: platform.os,
      ...(typeof platform.variant === 'string' ? { variant: platform.variant } : {}),
    };
  }
  if (Array.isArray(urls)) d.urls = urls.filter((u): u is string => typeof u === 'string');
  return d;
}

/**
 * Parses a manifest or index. `contentType` is the registry's Content-Type
 * (or the descriptor's media type); the body's own mediaType wins when present.
 */
export function parseManifest(body: Buffer, contentType: string): ImageManifest | ImageIndex {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalidArgument('malformed manifest: not JSON');
  }
  if (!isJsonObject(doc)) throw invalidArgument('malformed manifest: not a JSON object');
  const ct = contentType.split(';')[0].trim();
  const mediaType = typeof doc.mediaType === 'string' && doc.mediaType ? doc.mediaType : ct;
  if (doc.schemaVersion === 1 || mediaType === MediaType.DockerSchema1 || mediaType === MediaType.DockerSchema1Signed) {
    throw failedPrecondition(
      'this image uses the Docker schema 1 manifest format, which is deprecated and not supported; ' +
        're-push it with a current tool (docker, buildah, crane) to get a schema 2 or OCI manifest',
    );
  }
  if (Array.isArray(doc.manifests) || mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList) {
    if (!Array.isArray(doc.manifests)) throw invalidArgument('malformed index: no "manifests" list');
    return {
      kind: 'index',
      mediaType: mediaType || MediaType.OciIndex,
      manifests: doc.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`)),
    };
  }
  if (isJsonObject(doc.config) && Array.isArray(doc.layers)) {
    return {
      kind: 'manifest',
      mediaType: mediaType || MediaType.OciManifest,
      config: parseDescriptor(doc.config, 'config'),
      layers: doc.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`)),
    };
  }
  throw invalidArgument(`unsupported manifest media type "${mediaType || 'unknown'}"`);
}

/** What an image config says about where it runs and what its layers are. */
export interface ImageConfig {
  os: string;
  architecture: string;
  /** rootfs.diff_ids: the digest of each uncompressed layer, bottom first. */
  diffIds: string[];
  /** The whole document, for the runtime config and verbose status. */
  raw: unknown;
}

/** Parses an image config (`digest` names it in errors); its diff IDs must all be sha256 digests. */
export function parseImageConfig(body: Buffer, digest: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalidArgument(`image config ${digest} is not JSON`);
  }
  const d = isJsonObject(doc) ? doc : {};
  const rootfs = isJsonObject(d.rootfs) ? d.rootfs : {};
  const diffIds: unknown[] | undefined = Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids : undefined;
  if (!diffIds || !diffIds.every((x): x is string => typeof x === 'string' && isSha256Digest(x))) {
    throw invalidArgument(`image config ${digest} has no valid rootfs.diff_ids`);
  }
  return { os: typeof d.os === 'string' ? d.os : '', architecture: typeof d.architecture === 'string' ? d.architecture : '', diffIds, raw: doc };
}
