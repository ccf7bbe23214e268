// What the parts of the sandbox service (run, teardown, recovery) share:
// the record store, the namespace pinner, the pod network, the cgroup layout
// and the pod directories. The service builds it once and hands it out.
import { detectCgroupLayout, type CgroupLayout } from '../cgroups/cgroups';
import type { PodCgroupDriver } from '../cgroups/pod_driver';
import type { Logger } from '../log/logger';
import type { PodNetwork } from './cni_adapter';
import type { NamespacePinner } from './namespaces/pinner';
import type { SandboxStore } from './store';

export interface SandboxParts {
  store: SandboxStore;
  pinner: NamespacePinner;
  network: PodNetwork;
  /** Detected from the host on first use. */
  cgroupLayout(): CgroupLayout;
  /** Makes, limits and removes pod cgroups (runtime.cgroup_driver). */
  cgroups: PodCgroupDriver;
  logger: Logger;
  /** <state>/pods: ns/ and shm/ of each pod (volatile). */
  podsStateDir: string;
  /** <root>/pods: the records and each pod's files (persistent). */
  podsRootDir: string;
}

/** The cgroup layout given, or the host's, detected on first use. */
export function lazyCgroupLayout(given?: CgroupLayout): () => CgroupLayout {
  let layout = given;
  return () => (layout ??= detectCgroupLayout());
}
