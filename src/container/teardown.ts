// Deletes everything of a container: runtime state, shim, rootfs mount,
// snapshot, directories, record. Every step runs even when an earlier one
// failed; the record goes only when all succeeded, so a failed teardown is
// retried by the next RemoveContainer, RemovePodSandbox or restart.
import * as fs from 'node:fs';
import { BerthError, errorMessage, internal } from '../errors';
import { crashPoint } from '../util/crashpoint';
import type { ContainerDeps } from './deps';
import { idmapDirOf, releaseIdmapMounts } from './idmap_mounts';
import type { ContainerRecord } from './record';
import { nameOf } from './store';
import { unmountImageVolumes } from './volumes';

export class ContainerTeardown {
  constructor(private readonly deps: ContainerDeps) {}

  async run(rec: ContainerRecord): Promise<void> {
    const { runtime, snapshotter, store, logger, images } = this.deps;
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | unknown): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
        return false;
      }
    };
    const removing = rec.phase === 'removing';
    // A record naming a handler no longer configured (or unusable) has no runtime state berth can delete.
    if (this.deps.handlers.usable(rec.runtimeHandler)) {
      await step('runtime delete', () => runtime.delete(rec, true).catch(ignoreNotFound));
      if (removing) crashPoint('container-remove:after-runtime-delete');
    }
    // With the container gone the shim records the exit and leaves by itself.
    await step('shim', () => runtime.releaseShim(rec, { exitWaitMs: 5000, graceMs: 2000, waitMs: 5000 }));
    const released = await step('idmapped mounts', () => releaseIdmapMounts(this.deps.idmap, idmapDirOf(rec.stateDir)));
    const unmounted = (await step('rootfs unmount', () => snapshotter.unmount(rec.rootfsDir))) && released;
    if (removing) crashPoint('container-remove:after-unmount');
    await step('snapshot', () => snapshotter.remove(rec.snapshotKey).catch(ignoreNotFound));
    const volumesUnmounted = await step('image volumes unmount', () => unmountImageVolumes(snapshotter, rec.stateDir));
    // Never rm -r through a rootfs or image volume still mounted (it would descend into the overlay).
    if (unmounted && volumesUnmounted) await step('state dir', () => fs.promises.rm(rec.stateDir, { recursive: true, force: true }));
    await step('shim dir', () => fs.promises.rm(rec.shimDir, { recursive: true, force: true }));
    if (problems.length) {
      logger.warn('container teardown incomplete', { container: rec.id, problems });
      throw internal(`removing container ${rec.id}: ${problems.join('; ')}`);
    }
    await store.delete(rec.id);
    // Only our own reservation: a newer container may hold the name by now.
    store.releaseName(nameOf(rec), rec.id);
    // The image may have been removed while this container used it: its layers
    // were kept for the container and can go now.
    if (!images.lookup(rec.imageId)) {
      images.collectGarbage().catch((err: unknown) => logger.warn('layer garbage collection failed', { error: errorMessage(err) }));
    }
  }
}

function ignoreNotFound(err: unknown): void {
  if (err instanceof BerthError && err.kind === 'NOT_FOUND') return;
  throw err;
}
