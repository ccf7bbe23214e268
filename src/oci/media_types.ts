// Media types of the OCI image spec and their Docker schema 2 equivalents:
// the names, what we ask registries for, and what each layer type means for
// decompression.
import { invalidArgument } from '../errors';

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
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

/** Layer media types a pull accepts (zstd is refused with its own message before this). */
const PULLABLE_LAYERS = new Set<string>([
  MediaType.DockerLayerGzip,
  MediaType.DockerForeignLayerGzip,
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
]);

export function isLayerMediaType(mt: string): boolean {
  return PULLABLE_LAYERS.has(mt);
}

export type Compression = 'none' | 'gzip' | 'zstd';

/** Every layer media type the snapshotter can unpack, with its compression. */
const LAYER_COMPRESSION = new Map<string, Compression>([
  [MediaType.OciLayer, 'none'],
  [MediaType.OciLayerGzip, 'gzip'],
  [MediaType.OciLayerZstd, 'zstd'],
  [MediaType.OciLayerNondistributable, 'none'],
  [MediaType.OciLayerNondistributableGzip, 'gzip'],
  [MediaType.OciLayerNondistributableZstd, 'zstd'],
  [MediaType.DockerLayer, 'none'],
  [MediaType.DockerLayerGzip, 'gzip'],
  [MediaType.DockerForeignLayerGzip, 'gzip'],
  [MediaType.DockerLayerZstd, 'zstd'],
]);

/** The compression of a layer media type; invalidArgument for anything else. */
export function compressionOf(mediaType: string): Compression {
  const c = LAYER_COMPRESSION.get(mediaType);
  if (c === undefined) throw invalidArgument(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  return c;
}
