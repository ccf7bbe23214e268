// What the container modules share: the store, the runtime façade, the event
// bus, the per-container lock and the services they call. Wired once by
// ContainerService's constructor.
import type { PodCgroupDriver } from '../cgroups/pod_driver';
import type { BerthConfig } from '../config/config';
import type { ImageService } from '../image/service';
import type { Logger } from '../log/logger';
import type { ContainerRuntime } from '../runtime/container_runtime';
import type { RuntimeHandlerRegistry } from '../runtime/handlers';
import type { IdmapHelper } from '../runtime/idmap';
import type { HostInfo } from '../runtime/spec/host_info';
import type { SandboxRecord } from '../sandbox/record';
import type { Snapshotter } from '../snapshotter/snapshotter';
import type { KeyedMutex } from '../util/keyed_mutex';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';
import type { ContainerEventBus } from './events';
import type { ContainerStore } from './store';

/** How containers find their pod: by id, NOT_FOUND when it is gone. */
export interface PodLookup {
  get(idOrPrefix: string): SandboxRecord;
  /** Names the cgroups of a pod's containers; cgroupfs <pod cgroup>/<id> when absent. */
  readonly cgroupDriver?: PodCgroupDriver;
}

export interface ContainerDeps {
  readonly config: BerthConfig;
  readonly logger: Logger;
  readonly handlers: RuntimeHandlerRegistry;
  readonly images: ImageService;
  readonly snapshotter: Snapshotter;
  readonly pods: PodLookup;
  readonly host: HostInfo;
  readonly store: ContainerStore;
  readonly runtime: ContainerRuntime;
  readonly events: ContainerEventBus;
  readonly metrics: RuntimeMetrics;
  /** Serialises start/stop/remove/update of one container. */
  readonly lock: KeyedMutex;
  /** Idmapped mounts (berth-pinns) for pods in user namespaces and idmapped volumes. */
  readonly idmap: IdmapHelper;
}
