// The durable description of a pod sandbox: everything needed to answer the
// status RPCs and to undo what was set up, after a berthd restart too.
import type { PodCgroupRef } from '../cgroups/pod_driver';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { UserNamespaceMaps } from '../runtime/idmap';
import type { PodResources } from './resources';

export type NamespaceModeName = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

/**
 * creating: RunPodSandbox is in progress (a record left in this state by a
 *   killed berthd is rolled back at start);
 * ready: namespaces pinned and networked;
 * notready: stopped, or its namespaces vanished (reboot).
 */
export type SandboxLifecycle = 'creating' | 'ready' | 'notready';

export interface SandboxRecord {
  /** 64 hex characters. */
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: SandboxLifecycle;
  /** Unix time in nanoseconds, decimal string. */
  createdAt: string;
  runtimeHandler: string;
  /** The handler RunPodSandbox named ("" for the default), as PodSandboxStatus reports it; absent in older records. */
  requestedHandler?: string;
  /** The request's config as given (labels, annotations, DNS, port mappings...). */
  config: PodSandboxConfig__Output;
  namespaceModes: { network: NamespaceModeName; pid: NamespaceModeName; ipc: NamespaceModeName };
  /** Pinned namespace files; absent for namespaces shared with the host (or the container, for pid). */
  nsPaths: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  /** The pod's user namespace maps (userns mode POD); absent: the host's user namespace. */
  userns?: UserNamespaceMaps;
  /** Host PID of berth-pause, the init of the pod PID namespace (pid mode POD only). */
  pausePid?: number;
  /** Volatile directory (<state>/pods/<id>): ns/ and shm/. */
  stateDir: string;
  /** Persistent directory (<root>/pods/<id>): hostname, hosts, resolv.conf. */
  filesDir: string;
  /** The tmpfs for the pod's /dev/shm; absent with host IPC. */
  shmPath?: string;
  hostnameFile: string;
  hostsFile: string;
  resolvConfFile: string;
  hostname: string;
  cgroup: PodCgroupRef;
  network: { ip: string; additionalIps: string[] };
  /** The network plugin may have attached the pod (set before setup, cleared by a successful teardown). */
  networkAttached: boolean;
  /** Pod-level resources and overhead as last applied by UpdatePodSandboxResources. */
  resources?: PodResources;
}

/** The kubelet's identity of a sandbox: one of these may exist at a time. */
export function sandboxNameKey(m: SandboxRecord['metadata']): string {
  return `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;
}
