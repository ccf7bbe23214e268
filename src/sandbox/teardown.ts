// Undoing a pod: StopPodSandbox (its containers, then network, berth-pause,
// pinned namespaces and shm) and RemovePodSandbox (its containers, then the
// cgroup berth made and the pod directories, then the record). Every step
// tolerates already-done, so a retry after a failure or a crash finishes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { internal, wrapError } from '../errors';
import { crashPoint, type CrashPointName } from '../util/crashpoint';
import { podNetworkRef } from './cni_adapter';
import { mountsUnder } from './namespaces/mounts';
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

export class PodTeardown {
  constructor(
    private readonly d: SandboxParts,
    /** The current container side (assignable on the service after construction). */
    private readonly containers: () => PodContainers,
  ) {}

  /** StopPodSandbox of a locked pod: containers, resources, then NOTREADY. */
  async stop(rec: SandboxRecord): Promise<void> {
    await this.inOrder(STOP, rec, () => this.stopResources(rec));
    // A record left 'creating' by a failed rollback is torn down but keeps its state.
    if (rec.state === 'ready') {
      await this.d.store.update(rec.id, markNotReady);
      this.d.logger.info('pod sandbox stopped', { id: rec.id, name: sandboxNameKey(rec.metadata) });
    }
  }

  /** RemovePodSandbox of a locked pod: stops it if needed, removes its containers, resources and record. */
  async remove(rec: SandboxRecord): Promise<void> {
    // Like containerd: removing a running pod stops it first.
    if (rec.state === 'ready') await this.stop(rec);
    else await this.stopResources(rec);
    await this.inOrder(REMOVE, rec, () => this.removeResources(rec));
    await this.d.store.delete(rec.id);
    this.d.logger.info('pod sandbox removed', { id: rec.id, name: sandboxNameKey(rec.metadata) });
  }

  /** The containers' part of the RPC, then the pod's own, with a crash point after each. */
  private async inOrder(rpc: Rpc, rec: SandboxRecord, own: () => Promise<void>): Promise<void> {
    try {
      await rpc.containers(this.containers(), rec.id);
    } catch (err) {
      throw wrapError(`${rpc.name} ${rec.id}: cannot ${rpc.verb} its containers`, err);
    }
    crashPoint(rpc.afterContainers);
    await own();
    crashPoint(rpc.afterResources);
  }

  /** Everything RunPodSandbox may have made: the rollback of a failed or half-done creation. */
  async undoAll(rec: SandboxRecord): Promise<void> {
    await this.stopResources(rec);
    await this.removeResources(rec);
  }

  /** Stop-time teardown: network, pause, namespaces, shm. */
  async stopResources(rec: SandboxRecord): Promise<void> {
    if (rec.networkAttached) {
      try {
        await this.d.network.teardownPodNetwork(podNetworkRef(rec));
      } catch (err) {
        throw wrapError(`cannot tear down the network of pod ${rec.id}`, err);
      }
      if (this.d.store.get(rec.id)) await this.d.store.update(rec.id, (r) => void (r.networkAttached = false));
    }
    await killPause(rec);
    try {
      await this.d.pinner.unpin(path.join(rec.stateDir, 'ns'), rec.shmPath);
    } catch (err) {
      throw wrapError(`cannot unpin the namespaces of pod ${rec.id}`, err);
    }
  }

  /** Remove-time cleanup: cgroup (when berth made it and no other pod uses it), directories. */
  async removeResources(rec: SandboxRecord): Promise<void> {
    const shared = this.d.store.list((o) => o.id !== rec.id && o.cgroup.path === rec.cgroup.path).length > 0;
    await this.d.cgroups.remove(rec.cgroup, rec.id, rec.cgroup.createdByBerth && !shared);
    removeDir(rec.stateDir);
    removeDir(rec.filesDir);
  }
}

/** rm -r that refuses to descend into anything still mounted. */
export function removeDir(dir: string): void {
  const mounted = mountsUnder(dir);
  if (mounted.length > 0) {
    throw internal(`cannot remove ${dir}: still mounted: ${mounted.map((m) => m.mountpoint).join(', ')}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
