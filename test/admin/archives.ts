// Builds image archives the way skopeo (OCI image layout) and docker save
// (manifest.json) lay them out, from a busybox-static layer, with `tar`.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { makeLayer, sha256, type Layer } from '../helpers/registry';

const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'ls', 'true', 'env'];

export interface TestImageParts {
  /** The gzip layer, as a registry would hold it. */
  layer: Layer;
  /** The same layer uncompressed (what docker save writes). */
  layerTar: Buffer;
  config: Buffer;
  configDigest: string;
}

/** A busybox image: one layer, Cmd echo. `arch` changes the config (another platform). */
export function busyboxImage(arch = 'amd64', cmd: string[] = ['echo', 'hello from an imported image'], layer?: Layer): TestImageParts {
  const files: Record<string, Buffer | string | { symlink: string } | { copyOf: string }> = { 'bin/busybox': { copyOf: '/bin/busybox' } };
  for (const a of APPLETS) files[`bin/${a}`] = { symlink: 'busybox' };
  const l = layer ?? makeLayer(files);
  const layerTar = zlib.gunzipSync(l.blob);
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: cmd },
      rootfs: { type: 'layers', diff_ids: [l.diffId] },
      history: [{ created_by: 'berth test' }],
    }),
  );
  return { layer: l, layerTar, config, configDigest: sha256(config) };
}

function writeBlob(dir: string, data: Buffer): string {
  const digest = sha256(data);
  const p = path.join(dir, 'blobs', 'sha256', digest.slice(7));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return digest;
}

export interface OciManifestInfo {
  manifest: Buffer;
  digest: string;
}

/** Writes config, layer and an OCI manifest as blobs; returns the manifest. */
export function writeOciImage(dir: string, img: TestImageParts): OciManifestInfo {
  writeBlob(dir, img.config);
  writeBlob(dir, img.layer.blob);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: img.configDigest, size: img.config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: img.layer.digest, size: img.layer.blob.length }],
    }),
  );
  return { manifest, digest: writeBlob(dir, manifest) };
}

export function writeOciIndex(dir: string, manifests: unknown[]): void {
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
}

export function ociDescriptor(m: OciManifestInfo, annotations?: Record<string, string>, platform?: { os: string; architecture: string }): unknown {
  return {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: m.digest,
    size: m.manifest.length,
    ...(platform ? { platform } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

/** Writes a multi-platform index blob; returns its descriptor bytes and digest. */
export function writeIndexBlob(dir: string, entries: Array<{ m: OciManifestInfo; os: string; architecture: string }>): OciManifestInfo {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map((e) => ociDescriptor(e.m, undefined, { os: e.os, architecture: e.architecture })),
    }),
  );
  return { manifest: body, digest: writeBlob(dir, body) };
}

/** `tar -C dir -cf out .`, as skopeo/docker archives are (entries "./..."). */
export function tarDir(dir: string, out: string): string {
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', dir, '-cf', out, '.']);
  return out;
}

/** An OCI image layout archive holding one image named `name` (ref.name annotation). */
export function ociArchive(work: string, img: TestImageParts, name: string, out: string): OciManifestInfo {
  const dir = fs.mkdtempSync(path.join(work, 'oci-'));
  const m = writeOciImage(dir, img);
  writeOciIndex(dir, [ociDescriptor(m, { 'org.opencontainers.image.ref.name': name })]);
  tarDir(dir, out);
  fs.rmSync(dir, { recursive: true, force: true });
  return m;
}

/**
 * A classic `docker save` archive: <id>/layer.tar (uncompressed), <config hex>.json,
 * manifest.json, repositories. Each extra tag set becomes another image
 * sharing the layer through a symlink, as docker writes shared layers.
 */
export function dockerSaveArchive(work: string, images: Array<{ img: TestImageParts; tags: string[] }>, out: string): void {
  const dir = fs.mkdtempSync(path.join(work, 'docker-'));
  const manifest: unknown[] = [];
  const layerDirs = new Map<string, string>();
  images.forEach(({ img, tags }, i) => {
    const v1 = sha256(`v1-${i}-${img.configDigest}`).slice(7);
    fs.mkdirSync(path.join(dir, v1));
    const first = layerDirs.get(img.layer.diffId);
    if (first) fs.symlinkSync(`../${first}/layer.tar`, path.join(dir, v1, 'layer.tar'));
    else {
      fs.writeFileSync(path.join(dir, v1, 'layer.tar'), img.layerTar);
      layerDirs.set(img.layer.diffId, v1);
    }
    fs.writeFileSync(path.join(dir, v1, 'VERSION'), '1.0');
    fs.writeFileSync(path.join(dir, v1, 'json'), JSON.stringify({ id: v1 }));
    fs.writeFileSync(path.join(dir, `${img.configDigest.slice(7)}.json`), img.config);
    manifest.push({ Config: `${img.configDigest.slice(7)}.json`, RepoTags: tags, Layers: [`${v1}/layer.tar`] });
  });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  fs.writeFileSync(path.join(dir, 'repositories'), '{}');
  tarDir(dir, out);
  fs.rmSync(dir, { recursive: true, force: true });
}
