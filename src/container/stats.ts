// Container resource usage for the CRI stats RPCs: CPU and memory from the
// container's cgroup, the writable layer from the snapshotter's figure of its upper dir.
import { detectCgroupLayout, PodCgroup, type CgroupLayout, type CgroupStats } from '../cgroups/cgroups';
import { UsageSampler, type UsageSample } from '../cgroups/usage';
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
  // CPU and memory alone: all a CRI ContainerStats carries.
  private readonly sampler = new UsageSampler(() => (this.layout ??= detectCgroupLayout()), 'cpuMemory');

  constructor(
    private readonly deps: ContainerDeps,
    private readonly monitor: ExitMonitor,
  ) {}

  async usage(rec: ContainerRecord): Promise<ContainerUsage> {
    await this.monitor.refresh(rec);
    const out: ContainerUsage = {};
    if (isRunning(rec) && rec.cgroupsPath) out.cgroup = this.sampler.sample(rec.cgroupsPath);
    else if (rec.cgroupsPath) this.sampler.forget(rec.cgroupsPath);
    // Measured in the background by the snapshotter (a few seconds old at most), never walked here.
    const w = await this.deps.snapshotter.snapshotUsage(rec.snapshotKey).catch(() => undefined);
    if (w) out.writable = { bytes: w.bytes, inodes: w.inodes, timestampNs: (BigInt(w.at) * 1_000_000n).toString() };
    return out;
  }

  /** The cgroup figures alone (no CPU-rate sample, no writable-layer figure), for ListPodSandboxMetrics. */
  async cgroupStats(rec: ContainerRecord): Promise<CgroupStats | undefined> {
    await this.monitor.refresh(rec);
    if (!isRunning(rec) || !rec.cgroupsPath) return undefined;
    return new PodCgroup((this.layout ??= detectCgroupLayout()), rec.cgroupsPath).stats();
  }
}
