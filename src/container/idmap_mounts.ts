// Idmapped mounts of a container, made by berth where the OCI runtime
// cannot (runc 1.1): the rootfs is an overlay over an idmapped view of the
// layers (idmapping the overlay mount itself is refused by the kernel), and
// each bind source (volumes, pod files, /dev/shm) is replaced by an idmapped
// copy under <state dir>/idmap. The copies are only needed while the runtime
// sets the container's mounts up; they are detached right after create.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition } from '../errors';
import { hostIdOf, type IdmapHelper, type UserNamespaceMaps } from '../runtime/idmap';
import type { OciMount, OciSpec } from '../runtime/spec/oci_types';
import { mountsUnder } from '../util/mountinfo';
import type { Snapshotter } from '../snapshotter/snapshotter';

/** The pod's user namespace as containers use it. */
export interface PodUserns extends UserNamespaceMaps {
  /** The pinned user namespace file. */
  path: string;
}

/** <state dir>/idmap: where the idmapped copies go. */
export function idmapDirOf(stateDir: string): string {
  return path.join(stateDir, 'idmap');
}

/** Mounts the snapshot at rootfs over the layers as the pod's user namespace sees them. */
export async function mountIdmappedRootfs(
  snapshotter: Snapshotter,
  helper: IdmapHelper,
  key: string,
  rootfs: string,
  idmapDir: string,
  userns: PodUserns,
): Promise<void> {
  const uid = hostIdOf(userns.uids, 0);
  const gid = hostIdOf(userns.gids, 0);
  if (uid === undefined || gid === undefined) throw failedPrecondition('the pod user namespace does not map id 0');
  // New files of the container's root land in its own upper dir as the mapped root, as they must.
  await snapshotter.chownUpper(key, uid, gid);
  const layers = path.join(idmapDir, 'layers');
  await helper.idmap(snapshotter.snapshotsRoot, layers, { userns: userns.path });
  try {
    await snapshotter.mount(key, rootfs, false, layers);
  } finally {
    // The overlay holds private copies of its layers' mounts.
    await helper.umount([layers]);
  }
}

/** The maps a bind mount asked for itself (CRI Mount.uid_mappings/gid_mappings). */
function ownMaps(m: OciMount): UserNamespaceMaps | undefined {
  if (!m.uidMappings || !m.gidMappings) return undefined;
  return {
    uids: m.uidMappings.map((x) => ({ containerId: x.containerID, hostId: x.hostID, length: x.size })),
    gids: m.gidMappings.map((x) => ({ containerId: x.containerID, hostId: x.hostID, length: x.size })),
  };
}

/**
 * Idmaps the spec's bind mounts: those with their own maps, and every one in
 * a pod with a user namespace. With `runtimeIdmaps` the runtime does it from
 * the spec's mount mappings; otherwise berth attaches idmapped copies and
 * points the spec at them. Returns the copies (to detach after create).
 */
export async function idmapBindMounts(
  spec: OciSpec,
  helper: IdmapHelper,
  idmapDir: string,
  userns: PodUserns | undefined,
  runtimeIdmaps: boolean,
): Promise<string[]> {
  const made: string[] = [];
  for (const [i, m] of spec.mounts.entries()) {
    // /sys bound from the host (user namespace on the host network): sysfs cannot be idmapped, nor needs to be.
    if (m.type !== 'bind' || !m.source || m.destination === '/sys') continue;
    const own = ownMaps(m);
    if (!own && !userns) continue;
    if (runtimeIdmaps) {
      if (!own && userns) {
        m.uidMappings = userns.uids.map((x) => ({ containerID: x.containerId, hostID: x.hostId, size: x.length }));
        m.gidMappings = userns.gids.map((x) => ({ containerID: x.containerId, hostID: x.hostId, size: x.length }));
      }
      continue;
    }
    fs.mkdirSync(idmapDir, { recursive: true, mode: 0o711 });
    const dst = path.join(idmapDir, `m${i}`);
    made.push(dst);
    await helper.idmap(m.source, dst, own ? { maps: own } : { userns: (userns as PodUserns).path }, m.options?.includes('rbind') ?? false);
    m.source = dst;
    delete m.uidMappings;
    delete m.gidMappings;
  }
  return made;
}

/** Detaches whatever is still mounted under idmapDir (a create cut short, a crash). */
export async function releaseIdmapMounts(helper: IdmapHelper, idmapDir: string): Promise<void> {
  // Only a container in a user namespace has this directory, and nothing can
  // be mounted under one that does not exist: then the mount table (hundreds
  // of lines on a busy node, read twice below) is left alone.
  if (!(await fs.promises.stat(idmapDir).then(() => true, () => false))) return;
  const left = mountsUnder(idmapDir).map((m) => m.mountPoint);
  // Deepest first, so a parent is never detached with a child still in the list.
  left.sort((a, b) => b.length - a.length);
  await helper.umount(left);
  const still = mountsUnder(idmapDir);
  if (still.length > 0) throw failedPrecondition(`still mounted: ${still.map((m) => m.mountPoint).join(', ')}`);
}
