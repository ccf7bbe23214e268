// UpdatePodSandboxResources: the pod's resources (the sum of its
// containers') plus its overhead, written to the pod cgroup and kept in the
// pod record. Best effort, as the kubelet expects: every limit that can be
// set is set, and the error names each one that could not be.
import type { PodLimits } from '../cgroups/limits';
import { failedPrecondition, internal, invalidArgument } from '../errors';
import type { LinuxContainerResources__Output } from '../gen/runtime/v1/LinuxContainerResources';
import { int64 } from '../runtime/spec/resources';
import type { SandboxParts } from './parts';
import type { SandboxRecord } from './record';

/** What the pod record keeps: the request as given. */
export interface PodResources {
  resources: LinuxContainerResources__Output | null;
  overhead: LinuxContainerResources__Output | null;
}

/** A v2 interface file name: "<controller>.<key>", nothing that could leave the cgroup directory. */
const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;

function nonNegative(v: string | undefined, field: string): number {
  const n = int64(v, field);
  if (n < 0) throw invalidArgument(`${field} ${n} must not be negative`);
  return n;
}

/**
 * The limits for `resources` plus `overhead`. A limit the pod's resources
 * leave unset (0) is not touched, whatever the overhead says: overhead is
 * added to a limit, it does not create one. CPU quotas are added over the
 * pod's period.
 */
export function podLimits(r: LinuxContainerResources__Output | null, o: LinuxContainerResources__Output | null): PodLimits {
  const out: PodLimits = {};
  if (!r && !o) return out;
  const field = (which: 'resources' | 'overhead', name: string): string => `${which}.${name}`;
  const read = (x: LinuxContainerResources__Output | null, which: 'resources' | 'overhead') => ({
    shares: nonNegative(x?.cpuShares, field(which, 'cpu_shares')),
    period: nonNegative(x?.cpuPeriod, field(which, 'cpu_period')),
    quota: int64(x?.cpuQuota, field(which, 'cpu_quota')),
    memory: nonNegative(x?.memoryLimitInBytes, field(which, 'memory_limit_in_bytes')),
    swap: int64(x?.memorySwapLimitInBytes, field(which, 'memory_swap_limit_in_bytes')),
  });
  const res = read(r, 'resources');
  const ovh = read(o, 'overhead');
  const shares = res.shares + ovh.shares;
  if (shares > 0) out.cpuShares = Math.min(Math.max(shares, 2), 262144);
  const period = res.period || ovh.period || 0;
  if (period > 0) out.cpuPeriod = period;
  if (res.quota < 0) out.cpuQuota = -1;
  else if (res.quota > 0) {
    const extra = ovh.quota > 0 ? Math.round((ovh.quota * (period || 100_000)) / (ovh.period || 100_000)) : 0;
    out.cpuQuota = res.quota + extra;
  }
  if (res.memory > 0) out.memoryLimit = res.memory + ovh.memory;
  if (res.swap > 0) out.memorySwapLimit = res.swap + Math.max(ovh.swap, ovh.memory);
  else if (res.swap < 0) out.memorySwapLimit = -1;
  if (r?.cpusetCpus) out.cpusetCpus = r.cpusetCpus;
  if (r?.cpusetMems) out.cpusetMems = r.cpusetMems;
  const huge: Record<string, number> = {};
  for (const h of r?.hugepageLimits ?? []) huge[h.pageSize] = nonNegative(h.limit, `hugepage limit ${h.pageSize}`);
  for (const h of o?.hugepageLimits ?? []) {
    if (huge[h.pageSize] !== undefined) huge[h.pageSize] += nonNegative(h.limit, `overhead hugepage limit ${h.pageSize}`);
  }
  for (const size of Object.keys(huge)) {
    if (!/^\d+[KMG]B$/.test(size)) throw invalidArgument(`hugepage size "${size}" is not a size such as 2MB or 1GB`);
  }
  if (Object.keys(huge).length > 0) out.hugepages = huge;
  const unified = { ...(o?.unified ?? {}), ...(r?.unified ?? {}) };
  for (const key of Object.keys(unified)) {
    if (!UNIFIED_KEY.test(key)) throw invalidArgument(`unified cgroup key "${key}" is not a cgroup interface file name`);
  }
  if (Object.keys(unified).length > 0) out.unified = unified;
  return out;
}

/** Applies and records the pod's new resources. Caller holds the pod's lock. */
export async function updatePodResources(parts: SandboxParts, rec: SandboxRecord, req: PodResources): Promise<void> {
  const limits = podLimits(req.resources, req.overhead);
  const layout = parts.cgroupLayout();
  if (limits.unified && layout.version !== 2) {
    throw invalidArgument(`unified cgroup resources (${Object.keys(limits.unified).join(', ')}) need a cgroup v2 host; this host runs cgroup v1`);
  }
  if (!(await parts.cgroups.exists(rec.cgroup))) {
    throw failedPrecondition(`pod ${rec.id}: its cgroup ${rec.cgroup.path} does not exist (pod stopped or host rebooted); resources not applied`);
  }
  const failed = await parts.cgroups.applyLimits(rec.cgroup, limits);
  if (failed.length > 0) {
    const what = failed.map((f) => `${f.what}: ${f.error}`).join('; ');
    throw internal(`pod ${rec.id}: ${failed.length} cgroup limit(s) could not be set (the others were): ${what}`);
  }
  await parts.store.update(rec.id, (r) => {
    r.resources = { resources: req.resources, overhead: req.overhead };
  });
}
