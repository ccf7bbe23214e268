// Pod-level cgroup limits (UpdatePodSandboxResources) written straight to the
// pod cgroup's files, v1 (one hierarchy per controller) or v2. Containers are
// limited through runc; a pod cgroup has no runc container, so berth writes
// the interface files itself, with the same conversions runc uses.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage } from '../errors';
import type { CgroupLayout } from './cgroups';

/** Limits to set; an absent field leaves the current value alone. */
export interface PodLimits {
  cpuShares?: number;
  cpuPeriod?: number;
  /** -1: unlimited. */
  cpuQuota?: number;
  memoryLimit?: number;
  /** Memory plus swap (the CRI's and v1's meaning). */
  memorySwapLimit?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** Page size as the kernel names it ("2MB", "1GB") → bytes. */
  hugepages?: Record<string, number>;
  /** v2 interface files by name, as given. */
  unified?: Record<string, string>;
}

/** One file write: where, what, and (after apply) why it failed. */
export interface CgroupWrite {
  file: string;
  value: string;
}

/** runc's conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000). */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

function v1Writes(layout: Extract<CgroupLayout, { version: 1 }>, cgroupPath: string, l: PodLimits): CgroupWrite[] {
  const dirOf = (controller: string): string | undefined => {
    const h = layout.hierarchies.find((x) => x.controllers.includes(controller));
    return h && path.join(h.mountpoint, cgroupPath);
  };
  const out: CgroupWrite[] = [];
  const add = (controller: string, name: string, value: number | string | undefined): void => {
    const dir = dirOf(controller);
    if (value === undefined || value === '' || !dir) return;
    out.push({ file: path.join(dir, name), value: String(value) });
  };
  add('cpu', 'cpu.shares', l.cpuShares);
  // The period before the quota: the quota is checked against it.
  add('cpu', 'cpu.cfs_period_us', l.cpuPeriod);
  add('cpu', 'cpu.cfs_quota_us', l.cpuQuota);
  add('cpuset', 'cpuset.cpus', l.cpusetCpus);
  add('cpuset', 'cpuset.mems', l.cpusetMems);
  add('memory', 'memory.limit_in_bytes', l.memoryLimit);
  add('memory', 'memory.memsw.limit_in_bytes', l.memorySwapLimit);
  for (const [size, bytes] of Object.entries(l.hugepages ?? {})) add('hugetlb', `hugetlb.${size}.limit_in_bytes`, bytes);
  return out;
}

function v2Writes(dir: string, l: PodLimits): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  const add = (name: string, value: number | string | undefined): void => {
    if (value !== undefined && value !== '') out.push({ file: path.join(dir, name), value: String(value) });
  };
  if (l.cpuShares) add('cpu.weight', sharesToWeight(l.cpuShares));
  if (l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
    const quota = l.cpuQuota === undefined ? undefined : l.cpuQuota < 0 ? 'max' : String(l.cpuQuota);
    // cpu.max takes "$QUOTA $PERIOD"; with only a period the quota stays "max".
    add('cpu.max', `${quota ?? 'max'}${l.cpuPeriod ? ` ${l.cpuPeriod}` : ''}`);
  }
  add('cpuset.cpus', l.cpusetCpus);
  add('cpuset.mems', l.cpusetMems);
  add('memory.max', l.memoryLimit);
  // v2 limits swap alone; the CRI gives memory+swap.
  if (l.memorySwapLimit !== undefined && l.memoryLimit !== undefined) {
    add('memory.swap.max', l.memorySwapLimit < 0 ? 'max' : Math.max(0, l.memorySwapLimit - l.memoryLimit));
  }
  for (const [size, bytes] of Object.entries(l.hugepages ?? {})) add(`hugetlb.${size}.max`, bytes);
  for (const [name, value] of Object.entries(l.unified ?? {})) add(name, value);
  return out;
}

/** The writes that set `limits` on the cgroup at `cgroupPath`, in the order they must happen. */
export function limitWrites(layout: CgroupLayout, cgroupPath: string, limits: PodLimits): CgroupWrite[] {
  if (layout.version === 2) return v2Writes(path.join(layout.hierarchies[0].mountpoint, cgroupPath), limits);
  return v1Writes(layout, cgroupPath, limits);
}

/**
 * Performs the writes, each on its own (best effort); returns those that
 * failed with the reason. v1 refuses a memory limit above memory+swap (and
 * memory+swap below the memory limit), so a write refused with EINVAL is
 * retried once after the others: raising both needs memsw first, lowering
 * both needs memory first.
 */
export function applyWrites(writes: CgroupWrite[]): { write: CgroupWrite; error: string }[] {
  const failed: { write: CgroupWrite; error: string; code?: string }[] = [];
  const attempt = (w: CgroupWrite): { write: CgroupWrite; error: string; code?: string } | undefined => {
    try {
      fs.writeFileSync(w.file, w.value);
      return undefined;
    } catch (err) {
      return { write: w, error: errorMessage(err), code: errnoCode(err) };
    }
  };
  for (const w of writes) {
    const f = attempt(w);
    if (f) failed.push(f);
  }
  const retried = failed.filter((f) => f.code === 'EINVAL').map((f) => f.write);
  const final = failed.filter((f) => f.code !== 'EINVAL');
  for (const w of retried) {
    const f = attempt(w);
    if (f) final.push(f);
  }
  return final.map(({ write, error }) => ({ write, error }));
}
