// The durable description of a container: what CreateContainer was asked,
// where its pieces live, and what is known of its life so far.
import type { ContainerConfig__Output } from '../gen/runtime/v1/ContainerConfig';
import type { LinuxContainerResources__Output } from '../gen/runtime/v1/LinuxContainerResources';

export type ContainerStateName = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

/**
 * creating: CreateContainer in progress (rolled back at start if berthd died);
 * ready: created, possibly started or exited; see state.
 * removing: RemoveContainer in progress (finished at start if berthd died).
 */
export type ContainerPhase = 'creating' | 'ready' | 'removing';

export interface ContainerRecord {
  id: string;
  podSandboxId: string;
  phase: ContainerPhase;
  state: ContainerStateName;
  metadata: { name: string; attempt: number };
  /** The request's config as given (labels, annotations, mounts, envs...). */
  config: ContainerConfig__Output;
  /** The image as the user named it, and the image id it resolved to. */
  imageName: string;
  imageId: string;
  /** The image's repo digest (or tag) to show as image_ref's human form. */
  imageRefName: string;
  /** Images mounted as volumes (Mount.image): RemoveImage refuses them while the container exists. */
  imageVolumeIds?: string[];
  runtimeHandler: string;
  /** Unix nanoseconds, decimal strings ("0" = not yet). */
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  /** Absolute log path ("" when the pod has no log directory or the container no log path). */
  logPath: string;
  /** <state>/containers/<id>: bundle/ (config.json, rootfs/). The shim's files are in shimDir. */
  stateDir: string;
  bundleDir: string;
  rootfsDir: string;
  shimDir: string;
  /** Snapshot key of the writable layer (the container id). */
  snapshotKey: string;
  /** Signal StopContainer sends first: the config's stop_signal, else the image's StopSignal, else SIGTERM. */
  stopSignal: string;
  /** cgroupfs path of the container (for OOM and stats). */
  cgroupsPath: string;
  pid: number;
  /** The process identity the spec gave the container (uid, gid, additional gids). */
  user?: { uid: number; gid: number; additionalGids: number[] };
  /** Resources as last applied (create or UpdateContainerResources). */
  resources: LinuxContainerResources__Output | null;
}

/** The kubelet's identity of a container within its pod. */
export function containerNameKey(podSandboxId: string, name: string, attempt: number): string {
  return `${podSandboxId}/${name}/${attempt}`;
}
