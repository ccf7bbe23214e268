// The cgroup driver of pods (runtime.cgroup_driver): how a pod's cgroup is
// named, made, given limits and removed. "cgroupfs" makes directories
// itself; "systemd" asks systemd for slices and scopes over D-Bus
// (systemd/pod_driver.ts). Either way the pod's cgroup is a directory under
// each hierarchy, so usage is read from the files the same way (cgroups.ts).
import { PodCgroup, validateCgroupPath, type CgroupLayout } from './cgroups';
import { applyWrites, limitWrites, type PodLimits } from './limits';
import { SystemdManager } from './systemd/manager';
import { SystemdPodDriver } from './systemd/pod_driver';

/** A pod's cgroup as its record keeps it. */
export interface PodCgroupRef {
  /** Its path in every hierarchy, e.g. /kubepods/burstable/pod<uid> or /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice. */
  path: string;
  /** Whether berth made it (and so removes it). */
  createdByBerth: boolean;
  /** systemd driver: the slice unit, e.g. kubepods-burstable-pod<uid>.slice. */
  slice?: string;
}

/** A pod cgroup as named by a request, before anything exists. */
export type PodCgroupName = Omit<PodCgroupRef, 'createdByBerth'>;

/** A cgroup limit that could not be set, and why. */
export interface FailedLimit {
  what: string;
  error: string;
}

export interface PodCgroupDriver {
  readonly kind: 'cgroupfs' | 'systemd';
  /** The pod cgroup for the kubelet's cgroup_parent, or the default one for `uid`; INVALID_ARGUMENT when the driver cannot take it. */
  name(parent: string, uid: string): PodCgroupName;
  /** Whether the pod cgroup exists already (the kubelet made it, or another pod). */
  exists(c: PodCgroupName): Promise<boolean>;
  /** Makes the pod cgroup (parents included); an existing one is kept. */
  create(c: PodCgroupRef): Promise<void>;
  /** cgroup.procs files a pod process (berth-pause) joins on its own; empty when adoptPause places it. */
  procsFiles(c: PodCgroupRef): string[];
  /** Places berth-pause (which holds the pod's PID namespace) in the pod cgroup. */
  adoptPause(c: PodCgroupRef, podId: string, pid: number): Promise<void>;
  /** Removes what berth placed in the pod cgroup and, when `owned` (berth made it, no other pod uses it), the cgroup; gone already is fine. */
  remove(c: PodCgroupRef, podId: string, owned: boolean): Promise<void>;
  /** Sets `limits` on the pod cgroup; returns what could not be set (the rest was). */
  applyLimits(c: PodCgroupRef, limits: PodLimits): Promise<FailedLimit[]>;
  /** The container's cgroup: what the OCI spec's linux.cgroupsPath says, and its path in every hierarchy. */
  container(c: PodCgroupRef, containerId: string): { specPath: string; path: string };
}

/** The driver runtime.cgroup_driver names: systemd units, or directories under `defaultParent` (cgroupfs). */
export function podCgroupDriver(
  driver: 'cgroupfs' | 'systemd',
  layout: () => CgroupLayout,
  systemd: SystemdManager | undefined,
  defaultParent: string | undefined,
): PodCgroupDriver {
  return driver === 'systemd' ? new SystemdPodDriver(layout, systemd ?? new SystemdManager()) : new CgroupfsPodDriver(layout, defaultParent);
}

export class CgroupfsPodDriver implements PodCgroupDriver {
  readonly kind = 'cgroupfs';

  constructor(
    private readonly layout: () => CgroupLayout,
    /** Parent of pod cgroups when the pod names none. */
    readonly defaultParent = '/berth',
  ) {}

  name(parent: string, uid: string): PodCgroupName {
    return { path: validateCgroupPath(parent || `${this.defaultParent}/pod${uid}`) };
  }

  exists(c: PodCgroupName): Promise<boolean> {
    return Promise.resolve(new PodCgroup(this.layout(), c.path).exists());
  }

  create(c: PodCgroupRef): Promise<void> {
    new PodCgroup(this.layout(), c.path).create();
    return Promise.resolve();
  }

  procsFiles(c: PodCgroupRef): string[] {
    return new PodCgroup(this.layout(), c.path).procsFiles();
  }

  adoptPause(): Promise<void> {
    return Promise.resolve(); // berth-pause wrote itself into procsFiles()
  }

  async remove(c: PodCgroupRef, _podId: string, owned: boolean): Promise<void> {
    if (owned) await new PodCgroup(this.layout(), c.path).remove();
  }

  applyLimits(c: PodCgroupRef, limits: PodLimits): Promise<FailedLimit[]> {
    return Promise.resolve(applyWrites(limitWrites(this.layout(), c.path, limits)).map((f) => ({ what: `${f.write.file}=${f.write.value}`, error: f.error })));
  }

  container(c: PodCgroupRef, containerId: string): { specPath: string; path: string } {
    const p = `${c.path || this.defaultParent}/${containerId}`;
    return { specPath: p, path: p };
  }
}
