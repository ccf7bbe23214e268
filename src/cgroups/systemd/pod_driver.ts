// The systemd cgroup driver: a pod is a slice (the kubelet's
// kubepods-burstable-pod<uid>.slice, or berth-pod<uid>.slice), started over
// D-Bus unless it exists already; berth-pause is a scope in it; containers
// are scopes runc makes itself (runc --systemd-cgroup, cgroupsPath
// "<slice>:berth:<id>"). Limits are unit properties, and then the files,
// as runc sets them: systemd has no property for some (hugetlb, v1 memsw).
import { errorMessage } from '../../errors';
import type { CgroupLayout } from '../cgroups';
import { applyWrites, limitWrites, type PodLimits } from '../limits';
import type { FailedLimit, PodCgroupDriver, PodCgroupName, PodCgroupRef } from '../pod_driver';
import { prop, type SystemdManager } from './manager';
import {
  accountingProperties,
  containerCgroupsPath,
  defaultPodSlice,
  expandSlice,
  limitProperties,
  parentSlice,
  pauseScope,
  scopeCgroupPath,
} from './units';

export class SystemdPodDriver implements PodCgroupDriver {
  readonly kind = 'systemd';

  constructor(
    private readonly layout: () => CgroupLayout,
    private readonly systemd: SystemdManager,
  ) {}

  name(parent: string, uid: string): PodCgroupName {
    const slice = parent || defaultPodSlice(uid);
    return { path: expandSlice(slice), slice };
  }

  private slice(c: PodCgroupRef): string {
    // A record always has one under this driver; one from a cgroupfs run cannot be managed here.
    if (!c.slice) throw new Error(`pod cgroup ${c.path} was made by the cgroupfs driver; berthd now runs the systemd driver`);
    return c.slice;
  }

  async exists(c: PodCgroupName): Promise<boolean> {
    return c.slice !== undefined && (await this.systemd.activeState(c.slice)) === 'active';
  }

  async create(c: PodCgroupRef): Promise<void> {
    const slice = this.slice(c);
    const parent = parentSlice(slice);
    await this.systemd.startTransientUnit(slice, [
      prop.str('Description', `berth pod slice ${slice}`),
      // As runc makes a slice: its parent pulled in with Wants=, no default dependencies (berth starts pods at any time).
      ...(parent === '-.slice' ? [] : [prop.strs('Wants', [parent])]),
      prop.bool('DefaultDependencies', false),
      ...accountingProperties(this.layout()),
    ]);
  }

  procsFiles(): string[] {
    return [];
  }

  async adoptPause(c: PodCgroupRef, podId: string, pid: number): Promise<void> {
    await this.systemd.startTransientUnit(pauseScope(podId), [
      prop.str('Description', `berth-pause of pod ${podId}`),
      prop.str('Slice', this.slice(c)),
      prop.pids([pid]),
      prop.bool('DefaultDependencies', false),
      ...accountingProperties(this.layout()),
    ]);
  }

  async remove(c: PodCgroupRef, podId: string, owned: boolean): Promise<void> {
    await this.systemd.stopUnit(pauseScope(podId));
    // Stopping a slice stops what is left in it and removes its cgroups.
    if (owned && c.slice) await this.systemd.stopUnit(c.slice);
  }

  async applyLimits(c: PodCgroupRef, limits: PodLimits): Promise<FailedLimit[]> {
    const layout = this.layout();
    const failed: FailedLimit[] = [];
    const props = limitProperties(layout, limits);
    if (props.length > 0) {
      try {
        await this.systemd.setUnitProperties(this.slice(c), props);
      } catch (err) {
        failed.push({ what: `properties ${props.map(([n]) => n).join(', ')} of ${this.slice(c)}`, error: errorMessage(err) });
      }
    }
    // Then the files, exact (systemd rounds CPU quotas to whole percents) and for what has no property.
    for (const f of applyWrites(limitWrites(layout, c.path, limits))) failed.push({ what: `${f.write.file}=${f.write.value}`, error: f.error });
    return failed;
  }

  container(c: PodCgroupRef, containerId: string): { specPath: string; path: string } {
    const specPath = containerCgroupsPath(this.slice(c), containerId);
    return { specPath, path: scopeCgroupPath(specPath) };
  }
}
