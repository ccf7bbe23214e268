// Deletes everything of a container: runtime state, shim, rootfs mount,
// snapshot, directories, record. Every step runs even when an earlier one
// failed; the record goes only when all succeeded, so a failed teardown is
// retried by the next RemoveContainer, RemovePodSandbox or restart.
import { BerthError, errorMessage, internal } from '../errors';
import type { PhaseTrace } from '../metrics/phase_trace';
import { crashPoint } from '../util/crashpoint';
import { removeTree } from '../util/remove_tree';
import type { ContainerDeps } from './deps';
import { idmapDirOf, releaseIdmapMounts } from './idmap_mounts';
import type { ContainerRecord } from './record';
import { nameOf } from './store';
import { unmountImageVolumes } from './volumes';

type Step = (what: string, phase: string, fn: () => Promise<unknown> | unknown) => Promise<boolean>;

/** Runs steps on, collecting what failed; each is timed into `trace` when there is one. */
function stepper(trace: PhaseTrace | undefined): { step: Step; problems: string[] } {
  const problems: string[] = [];
  const step: Step = async (what, phase, fn) => {
    try {
      await (trace ? trace.time(phase, fn) : fn());
      return true;
    } catch (err) {
      problems.push(`${what}: ${errorMessage(err)}`);
      return false;
    }
  };
  return { step, problems };
}

export class ContainerTeardown {
  /**
   * Records whose runtime side (runtime state, shim, rootfs and idmapped
   * mounts) already went when their pod stopped. In memory only: after a
   * restart, removal simply does it again (every step tolerates already-done).
   */
  private readonly released = new WeakSet<ContainerRecord>();

  constructor(private readonly deps: ContainerDeps) {}

  /**
   * After StopPodSandbox killed it (call with its lock held): what only a live
   * container needs goes now, beside the pod's CNI DEL, as containerd deletes
   * a task once it exited and CRI-O unmounts a stopped container. Its record,
   * log and writable layer stay for RemoveContainer. A failure is left to the removal.
   */
  async releaseRuntime(rec: ContainerRecord): Promise<void> {
    const { step, problems } = stepper(undefined);
    await this.releaseSteps(rec, step);
    if (problems.length === 0) this.released.add(rec);
    else this.deps.logger.debug('runtime side of a stopped container not released yet', { container: rec.id, problems });
  }

  run(rec: ContainerRecord): Promise<void> {
    return this.deps.metrics.traced('remove_container', this.deps.logger, (trace) => this.steps(rec, trace), () => ({ container: rec.id }));
  }

  /** Runtime delete, then the shim and (beside it) the mounts; true when the rootfs is unmounted. */
  private async releaseSteps(rec: ContainerRecord, step: Step): Promise<boolean> {
    const { runtime, snapshotter } = this.deps;
    const removing = rec.phase === 'removing';
    // A record naming a handler no longer configured (or unusable) has no runtime state berth can delete.
    if (this.deps.handlers.usable(rec.runtimeHandler)) {
      await step('runtime delete', 'runtime_delete', () => runtime.delete(rec, true).catch(ignoreNotFound));
      if (removing) crashPoint('container-remove:after-runtime-delete');
    }
    // With the container gone the shim records the exit and leaves by itself;
    // the mounts are not the shim's, so both go side by side.
    const [, unmounted] = await Promise.all([
      step('shim', 'shim_release', () => runtime.releaseShim(rec, { exitWaitMs: 5000, graceMs: 2000, waitMs: 5000 })),
      (async () => {
        const released = await step('idmapped mounts', 'idmap_unmount', () => releaseIdmapMounts(this.deps.idmap, idmapDirOf(rec.stateDir)));
        return (await step('rootfs unmount', 'rootfs_unmount', () => snapshotter.unmount(rec.rootfsDir))) && released;
      })(),
    ]);
    return unmounted;
  }

  private async steps(rec: ContainerRecord, trace: PhaseTrace): Promise<void> {
    const { snapshotter, store, logger, images } = this.deps;
    const { step, problems } = stepper(trace);
    const unmounted = this.released.has(rec) || (await this.releaseSteps(rec, step));
    if (rec.phase === 'removing') crashPoint('container-remove:after-unmount');
    await step('snapshot', 'snapshot_remove', () => snapshotter.remove(rec.snapshotKey).catch(ignoreNotFound));
    const volumesUnmounted = await step('image volumes unmount', 'volumes_unmount', () => unmountImageVolumes(snapshotter, rec.stateDir));
    // Never rm -r through a rootfs or image volume still mounted (it would descend into the overlay); removeTree refuses too.
    if (unmounted && volumesUnmounted) await step('state dir', 'state_dir', () => removeTree(rec.stateDir));
    await step('shim dir', 'shim_dir', () => removeTree(rec.shimDir));
    if (problems.length) {
      logger.warn('container teardown incomplete', { container: rec.id, problems });
      throw internal(`removing container ${rec.id}: ${problems.join('; ')}`);
    }
    await trace.time('record_delete', () => store.delete(rec.id));
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
