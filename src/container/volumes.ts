// The container's volumes that come from images, turned into plain bind
// mounts before the spec builder sees them:
// - image volumes (Mount.image, KEP-4639): the image's committed layer
//   snapshots mounted read-only as one overlay (no copy) under the
//   container's state dir, bound whole or at image_sub_path;
// - the image's own VOLUMEs: a per-container directory filled with what the
//   image has at that path (content, ownership, modes: cp -a), mounted there
//   unless a CRI mount already targets the same path.
// Both live under the container's state dir and go with the container
// (teardown unmounts the image volumes before it removes the dir).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { errnoCode, failedPrecondition, invalidArgument, notFound } from '../errors';
import type { Mount__Output } from '../gen/runtime/v1/Mount';
import type { ImageRecord } from '../image/store';
import { resolveInRootfs } from '../runtime/spec/rootfs_users';
import type { ContainerDeps } from './deps';
import type { ContainerRecord } from './record';

const run = promisify(execFile);

export const IMAGE_VOLUMES_DIR = 'image-volumes';
export const VOLUMES_DIR = 'volumes';

/**
 * `sub` resolved inside `root` as if `root` were "/" (resolveInRootfs: ".."
 * stops at the root, symlinks, absolute ones too, are followed within it),
 * so no sub path names anything outside. The root is a read-only overlay:
 * what is resolved cannot change before the bind mount. It must exist.
 */
export function resolveInRoot(root: string, sub: string): string {
  const resolved = resolveInRootfs(root, sub);
  try {
    fs.lstatSync(resolved);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw invalidArgument(`image sub path "${sub}" does not exist in the image`);
    throw err;
  }
  return resolved;
}

/** The images a config mounts as volumes (ids), for the record; NOT_FOUND naming one not pulled. */
export function imageVolumeIds(deps: ContainerDeps, mounts: readonly Mount__Output[]): string[] {
  return mounts
    .filter((m) => m.image?.image)
    .map((m) => {
      const ref = m.image?.image ?? '';
      const img = deps.images.lookup(ref);
      if (!img) throw notFound(`image volume "${ref}" (for "${m.containerPath}") not found; pull it first`);
      return img.id;
    });
}

function topChain(img: ImageRecord): string {
  const top = img.chainIds[img.chainIds.length - 1];
  if (!top) throw failedPrecondition(`image ${img.id} has no layers`);
  return top;
}

/** Mounts the image volumes; returns the config's mounts with each image mount made a bind of its host path. */
async function mountImageVolumes(deps: ContainerDeps, rec: ContainerRecord, mounts: readonly Mount__Output[]): Promise<Mount__Output[]> {
  const out: Mount__Output[] = [];
  let n = 0;
  for (const m of mounts) {
    const ref = m.image?.image;
    if (!ref) {
      out.push(m);
      continue;
    }
    const img = deps.images.lookup(ref);
    if (!img) throw notFound(`image volume "${ref}" (for "${m.containerPath}") not found; pull it first`);
    const dir = path.join(rec.stateDir, IMAGE_VOLUMES_DIR, String(n++));
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    await deps.snapshotter.mount(topChain(img), dir, true);
    const source = m.imageSubPath ? resolveInRoot(dir, m.imageSubPath) : dir;
    // Read-only always: the image is shared by every container that mounts it.
    out.push({ ...m, hostPath: source, readonly: true, image: null, imageSubPath: '' });
  }
  return out;
}

/** A plain private read-write bind mount in the CRI's shape. */
function bindMount(containerPath: string, hostPath: string): Mount__Output {
  const none = { uidMappings: [], gidMappings: [], image: null, imageSubPath: '' };
  return { containerPath, hostPath, readonly: false, selinuxRelabel: false, recursiveReadOnly: false, propagation: 'PROPAGATION_PRIVATE', ...none };
}

/** The image's VOLUMEs no CRI mount covers, each a directory copied from the rootfs, as bind mounts. */
async function imageDeclaredVolumes(rec: ContainerRecord, image: ImageRecord, taken: readonly Mount__Output[]): Promise<Mount__Output[]> {
  const targets = new Set(taken.map((m) => path.posix.normalize(m.containerPath)));
  const out: Mount__Output[] = [];
  let n = 0;
  for (const vol of image.config.volumes) {
    const containerPath = path.posix.normalize(path.posix.join('/', vol));
    if (targets.has(containerPath)) continue;
    targets.add(containerPath);
    const dir = path.join(rec.stateDir, VOLUMES_DIR, String(n++));
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    // What the image has there (resolved inside the rootfs), with owners and modes.
    let src: string | undefined;
    try {
      src = resolveInRoot(rec.rootfsDir, containerPath);
      if (!fs.statSync(src).isDirectory()) src = undefined;
    } catch {
      src = undefined;
    }
    if (src) {
      await run('cp', ['-a', '--', `${src}/.`, dir]);
      const st = fs.statSync(src);
      fs.chownSync(dir, st.uid, st.gid);
      fs.chmodSync(dir, st.mode & 0o7777);
    }
    out.push(bindMount(containerPath, dir));
  }
  return out;
}

/** Everything the spec builder should mount for this container, image volumes resolved. Rootfs mounted already. */
export async function containerMounts(deps: ContainerDeps, rec: ContainerRecord, image: ImageRecord): Promise<Mount__Output[]> {
  const mounts = await mountImageVolumes(deps, rec, rec.config.mounts ?? []);
  return [...mounts, ...(await imageDeclaredVolumes(rec, image, mounts))];
}

/** Unmounts every image volume of the container (teardown; also those a crash left unrecorded). */
export async function unmountImageVolumes(snapshotter: Pick<ContainerDeps['snapshotter'], 'unmount'>, stateDir: string): Promise<void> {
  let entries: string[];
  try {
    entries = fs.readdirSync(path.join(stateDir, IMAGE_VOLUMES_DIR));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) await snapshotter.unmount(path.join(stateDir, IMAGE_VOLUMES_DIR, e));
}
