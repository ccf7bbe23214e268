// Usage of a cgroup for the CRI stats RPCs. CPU rate (usage_nano_cores)
// needs two samples, so the last one per cgroup is kept; with `keepFiles`,
// the cgroup's files stay open between samples too (kept_files.ts) until
// the cgroup is forgotten.
import { PodCgroup, type CgroupLayout, type CgroupStats, type StatsScope } from './cgroups';
import { KeptCgroupFiles } from './kept_files';

export interface UsageSample extends CgroupStats {
  /** Average over the interval since the previous sample, in nanocores. */
  cpuNanoCores?: string;
}

export class UsageSampler {
  private readonly last = new Map<string, { t: bigint; cpu: bigint }>();
  private readonly files?: KeptCgroupFiles;
  /** Each cgroup's PodCgroup, which joins its file paths once (kept until the cgroup is forgotten). */
  private readonly cgroups = new Map<string, PodCgroup>();

  constructor(
    private readonly layout: () => CgroupLayout,
    private readonly scope: StatsScope = 'all',
    keepFiles = false,
  ) {
    if (keepFiles) this.files = new KeptCgroupFiles();
  }

  sample(cgroupPath: string): UsageSample {
    const out: UsageSample = this.cgroup(cgroupPath).stats(this.scope, this.files?.reader(cgroupPath));
    if (out.cpuUsageNs !== undefined) {
      const t = BigInt(out.timestampNs);
      const cpu = BigInt(out.cpuUsageNs);
      const prev = this.last.get(cgroupPath);
      if (prev && t > prev.t && cpu >= prev.cpu) out.cpuNanoCores = (((cpu - prev.cpu) * 1_000_000_000n) / (t - prev.t)).toString();
      this.last.set(cgroupPath, { t, cpu });
    }
    return out;
  }

  /** The cgroup's cumulative CPU time alone (decimal ns), or undefined; no sample is taken. */
  cpuUsage(cgroupPath: string): string | undefined {
    return this.cgroup(cgroupPath).cpuUsageNs(this.files?.reader(cgroupPath));
  }

  forget(cgroupPath: string): void {
    this.last.delete(cgroupPath);
    this.cgroups.delete(cgroupPath);
    this.files?.forget(cgroupPath);
  }

  /** Forgets every cgroup not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const cgroupPath of [...this.last.keys()]) if (!keep.has(cgroupPath)) this.last.delete(cgroupPath);
    for (const cgroupPath of [...this.cgroups.keys()]) if (!keep.has(cgroupPath)) this.cgroups.delete(cgroupPath);
    this.files?.retain(keep);
  }

  /** Cgroups whose PodCgroup is kept, for tests. */
  get keptCgroups(): number {
    return this.cgroups.size;
  }

  private cgroup(cgroupPath: string): PodCgroup {
    let cg = this.cgroups.get(cgroupPath);
    if (!cg) this.cgroups.set(cgroupPath, (cg = new PodCgroup(this.layout(), cgroupPath)));
    return cg;
  }

  /** Cgroup files held open (keepFiles), for tests. */
  get openFiles(): number {
    return this.files?.openFiles ?? 0;
  }
}
