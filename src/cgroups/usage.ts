// Usage of a cgroup for the CRI stats RPCs. CPU rate (usage_nano_cores)
// needs two samples, so the last one per cgroup is kept.
import { PodCgroup, type CgroupLayout, type CgroupStats, type StatsScope } from './cgroups';

export interface UsageSample extends CgroupStats {
  /** Average over the interval since the previous sample, in nanocores. */
  cpuNanoCores?: string;
}

export class UsageSampler {
  private readonly last = new Map<string, { t: bigint; cpu: bigint }>();

  constructor(
    private readonly layout: () => CgroupLayout,
    private readonly scope: StatsScope = 'all',
  ) {}

  sample(cgroupPath: string): UsageSample {
    const out: UsageSample = new PodCgroup(this.layout(), cgroupPath).stats(this.scope);
    if (out.cpuUsageNs !== undefined) {
      const t = BigInt(out.timestampNs);
      const cpu = BigInt(out.cpuUsageNs);
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
