// Container resource usage for the CRI stats RPCs: CPU and memory from the
// container's cgroup, the writable layer from the snapshot's upper dir.
import { detectCgroupLayout, PodCgroup, type CgroupLayout, type CgroupStats } from '../cgroups/cgroups';
import { UsageSampler, type UsageSample } from '../cgroups/usage';
import { diskUsage } from '../util/disk_usage';
import { nowNs } from '../util/time';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { isRunning } from './state';

export interface ContainerUsage {
  cgroup?: UsageSample;
  writable?: { bytes: bigint; inodes: bigint; timestampNs: string };
}

/** CPU and memory of a running container's cgroup, and its writable layer. */
export class ContainerUsageReader {
  private layout?: CgroupLayout;
  private readonly sampler = new UsageSampler(() => (this.layout ??= detectCgroupLayout()));

  constructor(
    private readonly deps: ContainerDeps,
    private readonly monitor: ExitMonitor,
  ) {}

  async usage(rec: ContainerRecord): Promise<ContainerUsage> {
    await this.monitor.refresh(rec);
    const out: ContainerUsage = {};
    if (isRunning(rec) && rec.cgroupsPath) out.cgroup = this.sampler.sample(rec.cgroupsPath);
    else if (rec.cgroupsPath) this.sampler.forget(rec.cgroupsPath);
    try {
      const upper = this.deps.snapshotter.path(rec.snapshotKey);
      out.writable = { ...(await diskUsage(upper)), timestampNs: nowNs() };
    } catch {
      // snapshot gone (being removed): no figure
    }
    return out;
  }

  /** The cgroup figures alone (no CPU-rate sample, no writable-layer walk), for ListPodSandboxMetrics. */
  async cgroupStats(rec: ContainerRecord): Promise<CgroupStats | undefined> {
    await this.monitor.refresh(rec);
    if (!isRunning(rec) || !rec.cgroupsPath) return undefined;
    return new PodCgroup((this.layout ??= detectCgroupLayout()), rec.cgroupsPath).stats();
  }
}
