// cgroup resources and oom_score_adj from CRI LinuxContainerResources. Also used
// as is by UpdateContainerResources (`runc update --resources`).
import { invalidArgument } from '../../errors';
import type { LinuxContainerResources__Output } from '../../gen/runtime/v1/LinuxContainerResources';
import type { HostInfo } from './host_info';
import type { OciLinuxResources } from './oci_types';

/** CRI int64 fields arrive as decimal strings ("" or "0" meaning unset). */
export function int64(value: string | undefined, field: string): number {
  if (value === undefined || value === '') return 0;
  if (!/^-?\d+$/.test(value)) throw invalidArgument(`${field} "${value}" is not an integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw invalidArgument(`${field} ${value} is out of range`);
  return n;
}

export type Warn = (message: string) => void;

/**
 * The OCI resources for CRI resources. Only set fields are written: a
 * `runc update` with an absent field leaves the current value alone.
 */
export function toOciResources(
  r: LinuxContainerResources__Output | null | undefined,
  host: Pick<HostInfo, 'cgroupVersion' | 'swapControllerAvailable' | 'hugetlbControllerAvailable'>,
  warn: Warn = () => undefined,
): OciLinuxResources {
  const out: OciLinuxResources = {};
  if (!r) return out;
  const period = int64(r.cpuPeriod, 'cpu_period');
  const quota = int64(r.cpuQuota, 'cpu_quota');
  const shares = int64(r.cpuShares, 'cpu_shares');
  const limit = int64(r.memoryLimitInBytes, 'memory_limit_in_bytes');
  const swap = int64(r.memorySwapLimitInBytes, 'memory_swap_limit_in_bytes');
  if (period < 0) throw invalidArgument(`cpu_period ${period} must not be negative`);
  if (shares < 0) throw invalidArgument(`cpu_shares ${shares} must not be negative`);
  if (limit < 0) throw invalidArgument(`memory_limit_in_bytes ${limit} must not be negative`);

  const cpu: NonNullable<OciLinuxResources['cpu']> = {};
  if (period !== 0) cpu.period = period;
  if (quota !== 0) cpu.quota = quota;
  if (shares !== 0) cpu.shares = shares;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  const memory: NonNullable<OciLinuxResources['memory']> = {};
  if (limit !== 0) {
    memory.limit = limit;
    // memory+swap equal to memory: no swapping unless asked for.
    if (swap === 0 && host.swapControllerAvailable) memory.swap = limit;
  }
  if (swap !== 0 && host.swapControllerAvailable) memory.swap = swap;
  if (Object.keys(memory).length > 0) out.memory = memory;

  if (r.hugepageLimits.length > 0) {
    if (host.hugetlbControllerAvailable) {
      out.hugepageLimits = r.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: int64(h.limit, 'hugepage limit') }));
    } else {
      warn('hugetlb cgroup controller is absent: hugepage limits are not applied');
    }
  }

  const unifiedKeys = Object.keys(r.unified ?? {});
  if (unifiedKeys.length > 0) {
    if (host.cgroupVersion !== 2) {
      throw invalidArgument(`unified cgroup resources (${unifiedKeys.join(', ')}) need a cgroup v2 host; this host runs cgroup v1`);
    }
    out.unified = { ...r.unified };
  }
  return out;
}

let oomClampLogged = false;

/**
 * The oom_score_adj runc can really set: values below what berth may lower a
 * child to are raised to that floor (logged once), as containerd's
 * restrict_oom_score_adj does; without this runc would fail the container.
 */
export function clampOomScoreAdj(wanted: number, minAllowed: number, warn: Warn = () => undefined): number {
  const bounded = Math.max(-1000, Math.min(1000, wanted));
  if (bounded >= minAllowed) return bounded;
  if (!oomClampLogged) {
    oomClampLogged = true;
    warn(
      `oom_score_adj ${wanted} raised to ${minAllowed}: berth lacks CAP_SYS_RESOURCE to lower it further ` +
        '(logged once; later containers are clamped the same way)',
    );
  }
  return minAllowed;
}
