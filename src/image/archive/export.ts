// `berth images export`: writes the named images as an OCI image layout
// archive (oci-layout, index.json, blobs/sha256/...), with a docker-save
// manifest.json beside it so `docker load` takes it too. Blobs stream from
// the content store; they are leased for the duration, so garbage collection
// (an image removed meanwhile) cannot pull them from under the archive.
import { invalidArgument, notFound } from '../../errors';
import type { ImageService } from '../service';
import type { ImageRecord } from '../store';
import { hexOf } from '../../oci/digest';
import { Annotation, parseManifest } from '../../oci/manifest';
import { MediaType } from '../../oci/media_types';
import { formatReference, parseReference } from '../../oci/reference';
import type { TarItem } from './tar_writer';

export interface ExportPlan {
  images: Array<{ id: string; names: string[] }>;
  /** The archive's entries, in order; stream entries open their blob when reached. */
  items: TarItem[];
  /** Drops the leases on the exported blobs; call once the archive is written (or abandoned). */
  release(): void;
}

const blobPath = (digest: string): string => `blobs/sha256/${hexOf(digest)}`;

/** The names to put in the archive for `ref`: the one asked for, or all of the image's tags when asked by id. */
function namesFor(ref: string, img: ImageRecord): string[] {
  try {
    const n = formatReference(parseReference(ref));
    if (img.repoTags.includes(n)) return [n];
  } catch {
    // an id or id prefix
  }
  return img.repoTags;
}

export async function planExport(images: ImageService, refs: string[]): Promise<ExportPlan> {
  if (refs.length === 0) throw invalidArgument('name at least one image to export');
  const chosen = new Map<string, { img: ImageRecord; names: string[] }>();
  for (const ref of refs) {
    const img = images.lookup(ref);
    if (!img) throw notFound(`image ${JSON.stringify(ref)} not found`);
    const entry = chosen.get(img.id) ?? { img, names: [] };
    for (const n of namesFor(ref, img)) if (!entry.names.includes(n)) entry.names.push(n);
    chosen.set(img.id, entry);
  }

  // Leased while no garbage collection runs, so every blob checked here stays until release().
  return images.withPullDeps(async (deps) => {
    const blobs = new Map<string, number>();
    const index: unknown[] = [];
    const dockerManifest: unknown[] = [];
    for (const { img, names } of chosen.values()) {
      const manifestBody = await deps.content.read(img.manifestDigest);
      const m = parseManifest(manifestBody, MediaType.OciManifest);
      if (m.kind !== 'manifest') throw invalidArgument(`image ${img.id}: its manifest ${img.manifestDigest} is an index`);
      for (const d of [{ digest: img.manifestDigest, size: manifestBody.length }, m.config, ...m.layers]) {
        const size = deps.content.size(d.digest);
        if (size === undefined) throw notFound(`image ${img.id}: blob ${d.digest} is missing from the content store`);
        blobs.set(d.digest, size);
      }
      const desc = { mediaType: m.mediaType, digest: img.manifestDigest, size: manifestBody.length };
      if (names.length === 0) index.push(desc);
      for (const name of names) {
        const ref = parseReference(name);
        index.push({
          ...desc,
          annotations: { [Annotation.ImageName]: name, [Annotation.RefName]: ref.tag ?? 'latest' },
        });
      }
      dockerManifest.push({ Config: blobPath(m.config.digest), RepoTags: names, Layers: m.layers.map((l) => blobPath(l.digest)) });
    }
    const release = deps.leases.hold(blobs.keys());
    const items: TarItem[] = [
      { kind: 'file', name: 'oci-layout', data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
      {
        kind: 'file',
        name: 'index.json',
        data: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: index })),
      },
      { kind: 'file', name: 'manifest.json', data: Buffer.from(JSON.stringify(dockerManifest)) },
      { kind: 'dir', name: 'blobs' },
      { kind: 'dir', name: 'blobs/sha256' },
      ...[...blobs].map(([digest, size]): TarItem => ({ kind: 'stream', name: blobPath(digest), size, open: () => deps.content.openRead(digest) })),
    ];
    return {
      images: [...chosen.values()].map(({ img, names }) => ({ id: img.id, names })),
      items,
      release,
    };
  });
}
