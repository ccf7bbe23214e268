// Container and pod resource usage for the CRI stats RPCs: CPU and memory from
// the cgroup, the writable layer from the snapshotter's figure of its upper dir. CPU rate
// (usage_nano_cores) needs two samples, so the last one per cgroup is kept.
import { detectCgroupLayout, PodCgroup, type CgroupLayout, type CgroupStats } from '../cgroups/cgroups';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { isRunning } from './state';

export interface UsageSample {
  timestampNs: string;
  cpuUsageNs?: string;
  /** Average over the interval since the previous sample, in nanocores. */
  cpuNanoCores?: string;
  memory: Omit<CgroupStats, 'timestampNs' | 'cpuUsageNs'>;
}

export class UsageSampler {
  private readonly last = new Map<string, { t: bigint; cpu: bigint }>();

  constructor(private readonly layout: () => CgroupLayout) {}

  sample(cgroupPath: string): UsageSample {
    const s = new PodCgroup(this.layout(), cgroupPath).stats();
    const out: UsageSample = {
      timestampNs: s.timestampNs,
      cpuUsageNs: s.cpuUsageNs,
      memory: {
        memoryUsageBytes: s.memoryUsageBytes,
        memoryWorkingSetBytes: s.memoryWorkingSetBytes,
        memoryRssBytes: s.memoryRssBytes,
        memoryMappedFileBytes: s.memoryMappedFileBytes,
      },
    };
    if (s.cpuUsageNs !== undefined) {
      const t = BigInt(s.timestampNs);
      const cpu = BigInt(s.cpuUsageNs);
      const prev = this.last.get(cgroupPath);
      if (prev && t > prev.t && cpu >= prev.cpu) out.cpuNanoCores = (((cpu - prev.cpu) * 1_000_000_000n) / (t - prev.t)).toString();
      this.last.set(cgroupPath, { t, cpu });
    }
    return out;
  }

  forget(cgroupPath: string): void {
    this.last.delete(cgroupPath);
  }
}

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
    // Measured in the background by the snapshotter (a few seconds old at most), never walked here.
    const w = await this.deps.snapshotter.snapshotUsage(rec.snapshotKey).catch(() => undefined);
    if (w) out.writable = { bytes: w.bytes, inodes: w.inodes, timestampNs: (BigInt(w.at) * 1_000_000n).toString() };
    return out;
  }
}
