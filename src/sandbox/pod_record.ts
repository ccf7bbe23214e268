// A new pod's record as RunPodSandbox makes it from the checked request
// (PodSpec): its directories, files, namespaces and cgroup.
import * as os from 'node:os';
import * as path from 'node:path';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import { nowNs } from '../util/time';
import type { SandboxParts } from './parts';
import type { SandboxRecord } from './record';
import { initialSandboxState } from './state';

/** A RunPodSandbox request as checked at the CRI edge (src/cri/validate_pod.ts). */
export interface PodSpec {
  /** The request's config as given, kept in the record. */
  config: PodSandboxConfig__Output;
  metadata: SandboxRecord['metadata'];
  namespaceModes: SandboxRecord['namespaceModes'];
  /** The pod's user namespace maps (userns mode POD). */
  userns?: SandboxRecord['userns'];
  sysctls: Record<string, string>;
  /** The pod's own hostname (pod network only); the host's name is used when absent. */
  hostname?: string;
  /** The pod cgroup: the pod's cgroup parent, or `<default parent>/pod<uid>` (cgroupfs) or `berth-pod<uid>.slice` (systemd). */
  cgroupPath: string;
  /** systemd driver: the pod's slice, whose cgroup is cgroupPath. */
  cgroupSlice?: string;
  /** The pod's resolv.conf; undefined to copy the host's. */
  resolvConf?: string;
  /** The runtime handler name ("" for the default). */
  runtimeHandler: string;
}

/**
 * The record, in 'creating'. What a rollback must undo is decided up front
 * and saved with it (one fsync'd write instead of one per step), so a
 * rollback after a crash knows it too.
 */
export function newPodRecord(
  d: Pick<SandboxParts, 'podsStateDir' | 'podsRootDir' | 'store'>,
  id: string,
  spec: PodSpec,
  runtimeHandler: string,
  cgroupExisted: boolean,
): SandboxRecord {
  const stateDir = path.join(d.podsStateDir, id);
  const filesDir = path.join(d.podsRootDir, id);
  const cgroupPath = spec.cgroupPath;
  const createdByBerth =
    !cgroupExisted ||
    d.store.list((o) => o.id !== id && o.cgroup.path === cgroupPath && o.cgroup.createdByBerth).length > 0;
  return {
    id,
    metadata: spec.metadata,
    state: initialSandboxState(),
    createdAt: nowNs(),
    runtimeHandler,
    requestedHandler: spec.runtimeHandler,
    config: spec.config,
    namespaceModes: spec.namespaceModes,
    ...(spec.userns ? { userns: spec.userns } : {}),
    nsPaths: {},
    stateDir,
    filesDir,
    shmPath: spec.namespaceModes.ipc === 'POD' ? path.join(stateDir, 'shm') : undefined,
    hostnameFile: path.join(filesDir, 'hostname'),
    hostsFile: path.join(filesDir, 'hosts'),
    resolvConfFile: path.join(filesDir, 'resolv.conf'),
    hostname: spec.hostname || os.hostname(),
    cgroup: { path: cgroupPath, createdByBerth, ...(spec.cgroupSlice ? { slice: spec.cgroupSlice } : {}) },
    network: { ip: '', additionalIps: [] },
    networkAttached: spec.namespaceModes.network === 'POD',
  };
}
