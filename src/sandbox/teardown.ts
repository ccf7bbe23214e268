// Undoing a pod: StopPodSandbox (its containers killed while the network is
// detached beside them, then berth-pause, pinned namespaces and shm) and
// RemovePodSandbox (its containers, then the cgroup berth made and the pod directories, then the record). Every step
// tolerates already-done, so a retry after a failure or a crash finishes.
import * as path from 'node:path';
import { wrapError } from '../errors';
import type { PhaseTrace } from '../metrics/phase_trace';
import { crashPoint, type CrashPointName } from '../util/crashpoint';
import { podNetworkRef } from './cni_adapter';
import { removeTrees } from '../util/remove_tree';
import { settleAll } from '../util/settle';
import { killPause } from './namespaces/pause';
import type { SandboxParts } from './parts';
import { sandboxNameKey, type SandboxRecord } from './record';
import { markNotReady } from './state';

/** The container side: StopPodSandbox/RemovePodSandbox stop and remove the pod's containers through this. */
export interface PodContainers {
  stopContainersOfPod(podId: string): Promise<void>;
  removeContainersOfPod(podId: string): Promise<void>;
}

interface Rpc {
  name: string;
  verb: string;
  containers(c: PodContainers, podId: string): Promise<void>;
  afterContainers: CrashPointName;
  afterResources: CrashPointName;
}
const STOP: Rpc = {
  name: 'StopPodSandbox', verb: 'stop', containers: (c, id) => c.stopContainersOfPod(id),
  afterContainers: 'pod-stop:after-containers-stopped', afterResources: 'pod-stop:after-resources',
};
const REMOVE: Rpc = {
  name: 'RemovePodSandbox', verb: 'remove', containers: (c, id) => c.removeContainersOfPod(id),
  afterContainers: 'pod-remove:after-containers-removed', afterResources: 'pod-remove:after-resources',
};

/** Times a step into the RPC's phase trace, when there is one (recovery and rollback have none). */
function timed<T>(trace: PhaseTrace | undefined, phase: string, fn: () => Promise<T>): Promise<T> {
  return trace ? trace.time(phase, fn) : fn();
}

export class PodTeardown {
  constructor(
    private readonly d: SandboxParts,
    /** The current container side (assignable on the service after construction). */
    private readonly containers: () => PodContainers,
  ) {}

  /** StopPodSandbox of a locked pod: containers, resources, then NOTREADY. */
  async stop(rec: SandboxRecord, trace?: PhaseTrace): Promise<void> {
    // StopPodSandbox kills what is left of the containers (SIGKILL, no grace),
    // so nothing of theirs can notice the network going: CNI DEL runs beside
    // the kills instead of after them. The netns stays pinned until both end.
    const [, detached] = await settleAll([
      this.containersPart(STOP, rec, trace).then(() => timed(trace, 'pause', () => killPause(rec))),
      this.detachNetwork(rec, trace),
    ]);
    await this.unpin(rec, trace);
    crashPoint(STOP.afterResources);
    // A record left 'creating' by a failed rollback is torn down but keeps its state.
    // One record write for both facts: a crash before it finds networkAttached
    // still set and runs CNI DEL again, which the CNI spec makes harmless.
    if (rec.state === 'ready' || detached) {
      const ready = rec.state === 'ready';
      await timed(trace, 'record', () =>
        this.d.store.update(rec.id, (r) => {
          if (ready) markNotReady(r);
          if (detached) r.networkAttached = false;
        }),
      );
      if (ready) this.d.logger.info('pod sandbox stopped', { id: rec.id, name: sandboxNameKey(rec.metadata) });
    }
  }

  /** RemovePodSandbox of a locked pod: stops it if needed, removes its containers, resources and record. */
  async remove(rec: SandboxRecord, trace?: PhaseTrace): Promise<void> {
    // Like containerd: removing a running pod stops it first.
    if (rec.state === 'ready') await timed(trace, 'stop', () => this.stop(rec));
    // The record goes below, so whether the network is still attached need not be written.
    else await timed(trace, 'stop_resources', () => this.stopResources(rec));
    await this.inOrder(REMOVE, rec, trace, () => this.removeResources(rec, trace));
    await timed(trace, 'record', () => this.d.store.delete(rec.id));
    this.d.logger.info('pod sandbox removed', { id: rec.id, name: sandboxNameKey(rec.metadata) });
  }

  /** The containers' part of the RPC, then the pod's own, with a crash point after each. */
  private async inOrder(rpc: Rpc, rec: SandboxRecord, trace: PhaseTrace | undefined, own: () => Promise<void>): Promise<void> {
    await this.containersPart(rpc, rec, trace);
    await own();
    crashPoint(rpc.afterResources);
  }

  private async containersPart(rpc: Rpc, rec: SandboxRecord, trace: PhaseTrace | undefined): Promise<void> {
    try {
      await timed(trace, 'containers', () => rpc.containers(this.containers(), rec.id));
    } catch (err) {
      throw wrapError(`${rpc.name} ${rec.id}: cannot ${rpc.verb} its containers`, err);
    }
    crashPoint(rpc.afterContainers);
  }

  /** Everything RunPodSandbox may have made: the rollback of a failed or half-done creation. */
  async undoAll(rec: SandboxRecord): Promise<void> {
    // The caller deletes the record next; until then a retry finds networkAttached and runs CNI DEL again, harmlessly.
    await this.stopResources(rec);
    await this.removeResources(rec);
  }

  /**
   * Stop-time teardown: network and berth-pause side by side (CNI DEL needs
   * the pinned netns, not the pause process), then the pinned namespaces and
   * shm. True when it detached the network (the caller records that).
   */
  async stopResources(rec: SandboxRecord, trace?: PhaseTrace): Promise<boolean> {
    const [detached] = await Promise.all([this.detachNetwork(rec, trace), timed(trace, 'pause', () => killPause(rec))]);
    await this.unpin(rec, trace);
    return detached;
  }

  /** CNI DEL of an attached pod (before its netns is unpinned); true when there was something to detach. */
  private async detachNetwork(rec: SandboxRecord, trace: PhaseTrace | undefined): Promise<boolean> {
    if (!rec.networkAttached) return false;
    try {
      await timed(trace, 'cni_del', () => this.d.network.teardownPodNetwork(podNetworkRef(rec)));
    } catch (err) {
      throw wrapError(`cannot tear down the network of pod ${rec.id}`, err);
    }
    return true;
  }

  private async unpin(rec: SandboxRecord, trace: PhaseTrace | undefined): Promise<void> {
    try {
      await timed(trace, 'unpin', () => this.d.pinner.unpin(path.join(rec.stateDir, 'ns'), rec.shmPath));
    } catch (err) {
      throw wrapError(`cannot unpin the namespaces of pod ${rec.id}`, err);
    }
  }

  /** Remove-time cleanup: cgroup (when berth made it and no other pod uses it) and directories. */
  async removeResources(rec: SandboxRecord, trace?: PhaseTrace): Promise<void> {
    const shared = this.d.store.list((o) => o.id !== rec.id && o.cgroup.path === rec.cgroup.path).length > 0;
    // Independent: side by side, both settled before a failure is thrown (a retry redoes what is left).
    await settleAll([
      timed(trace, 'cgroup', () => this.d.cgroups.remove(rec.cgroup, rec.id, rec.cgroup.createdByBerth && !shared)),
      timed(trace, 'dirs', () => removeTrees([rec.stateDir, rec.filesDir])),
    ]);
  }
}
