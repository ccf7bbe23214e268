// Manifest media types and parsing: Docker schema 2, OCI manifests, Docker
// manifest lists / OCI indexes (with platform selection). Schema 1 is refused.
import { invalidArgument, failedPrecondition, notFound } from '../errors';
import { isSha256Digest } from '../image/reference';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
} as const;

/** What we ask registries for, best first. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
  // Asked for so a schema-1-only image yields our clear error rather than a 404.
  MediaType.DockerSchema1Signed,
  MediaType.DockerSchema1,
].join(', ');

/** The most a manifest or config may weigh: they are read into memory. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isRecord(v)) throw invalidArgument(`malformed manifest: ${what} is not an object`);
  const { mediaType, digest, size, platform, urls } = v;
  if (typeof digest !== 'string' || !isSha256Digest(digest))
    throw invalidArgument(`malformed manifest: ${what} has no valid sha256 digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalidArgument(`malformed manifest: ${what} has no valid size`);
  const d: Descriptor = { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size };
  if (isRecord(platform) && typeof platform.architecture === 'string' && typeof platform.os === 'string') {
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
  if (!isRecord(doc)) throw invalidArgument('malformed manifest: not a JSON object');
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
  if (isRecord(doc.config) && Array.isArray(doc.layers)) {
    return {
      kind: 'manifest',
      mediaType: mediaType || MediaType.OciManifest,
      config: parseDescriptor(doc.config, 'config'),
      layers: doc.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`)),
    };
  }
  throw invalidArgument(`unsupported manifest media type "${mediaType || 'unknown'}"`);
}

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const p: Platform = { os: 'linux', architecture: arch[process.arch] ?? process.arch };
  if (process.arch === 'arm') p.variant = 'v7';
  if (process.arch === 'arm64') p.variant = 'v8';
  return p;
}

/** Picks the index entry for `want`, as containerd's platform matcher would. */
export function selectPlatform(index: ImageIndex, want: Platform = hostPlatform()): Descriptor {
  const candidates = index.manifests.filter(
    (m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture,
  );
  // Exact variant first; arm64 entries usually carry no variant (means v8).
  const exact = candidates.find((m) => (m.platform?.variant ?? '') === (want.variant ?? ''));
  const lenient = candidates.find((m) => !m.platform?.variant || (want.architecture === 'arm64' && m.platform.variant === 'v8'));
  const chosen = exact ?? lenient ?? (want.architecture === 'amd64' ? undefined : candidates[0]);
  if (!chosen) {
    const have = index.manifests
      .map((m) => (m.platform ? [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join('/') : '?'))
      .join(', ');
    const wanted = [want.os, want.architecture, want.variant].filter(Boolean).join('/');
    throw notFound(`no image for platform ${wanted} in the manifest list (it has: ${have || 'nothing'})`);
  }
  return chosen;
}

/** Layer compression by media type; zstd and unknown types are refused by the unpacker. */
export function isLayerMediaType(mt: string): boolean {
  return (
    mt === MediaType.DockerLayerGzip ||
    mt === MediaType.DockerForeignLayerGzip ||
    mt === MediaType.OciLayer ||
    mt === MediaType.OciLayerGzip ||
    mt === MediaType.OciLayerZstd ||
    mt === MediaType.OciLayerNondistributable ||
    mt === MediaType.OciLayerNondistributableGzip
  );
}
