// CPU and memory usage of a cgroup for the CRI stats RPCs. CPU rate
// (usage_nano_cores) needs two samples, so the last one per cgroup is kept.
import { PodCgroup, type CgroupLayout, type CgroupStats } from './cgroups';

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
