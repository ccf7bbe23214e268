// Names under the systemd cgroup driver, as systemd, runc and the kubelet
// spell them: a slice name "a-b-c.slice" is the cgroup
// /a.slice/a-b.slice/a-b-c.slice; a container is the scope
// "<prefix>-<id>.scope" in its pod's slice, named to runc as
// "<slice>:<prefix>:<id>" (runc --systemd-cgroup). And the unit properties
// that carry pod limits, converted as runc converts them.
import { invalidArgument } from '../../errors';
import type { CgroupLayout } from '../cgroups';
import { sharesToWeight, type PodLimits } from '../limits';
import { prop, type UnitProperty } from './manager';

/** Prefix of berth's container scopes (containerd uses "cri-containerd", CRI-O "crio"). */
export const SCOPE_PREFIX = 'berth';
/** runc's global flag for the systemd driver: it makes each container's scope over D-Bus. */
export const RUNC_SYSTEMD_ARGS: readonly string[] = ['--systemd-cgroup'];
/** Where pods go when the kubelet names no parent slice. */
export const DEFAULT_POD_PARENT = 'berth.slice';
/** systemd's UNIT_NAME_MAX. */
const UNIT_NAME_MAX = 255;
/** Characters systemd allows in a unit name's prefix ("-" separates slice levels). */
const UNIT_CHARS = /^[A-Za-z0-9:_.\\]+$/;

/** The cgroup path of slice `name` ("-.slice" is the root), as systemd and runc's ExpandSlice derive it; throws INVALID_ARGUMENT. */
export function expandSlice(name: string): string {
  if (!name.endsWith('.slice') || name === '.slice' || name.includes('/') || Buffer.byteLength(name) > UNIT_NAME_MAX) {
    throw invalidArgument(`cgroup parent "${name}" is not a systemd slice name such as kubepods-burstable-pod<uid>.slice; berth uses the systemd cgroup driver`);
  }
  const stem = name.slice(0, -'.slice'.length);
  if (stem === '-') return '/';
  let out = '';
  let prefix = '';
  for (const part of stem.split('-')) {
    if (!part || !UNIT_CHARS.test(part)) throw invalidArgument(`cgroup parent "${name}" is not a valid slice name`);
    out += `/${prefix}${part}.slice`;
    prefix += `${part}-`;
  }
  return out;
}

/** The slice a slice lives in ("a-b-c.slice" → "a-b.slice"; top level → "-.slice"). */
export function parentSlice(name: string): string {
  const stem = name.slice(0, -'.slice'.length);
  const cut = stem.lastIndexOf('-');
  return cut <= 0 ? '-.slice' : `${stem.slice(0, cut)}.slice`;
}

/** A pod's own slice when the kubelet gives none: berth-pod<uid>.slice ("-" in the uid escaped as the kubelet does). */
export function defaultPodSlice(uid: string): string {
  return `${DEFAULT_POD_PARENT.slice(0, -'.slice'.length)}-pod${uid.replace(/-/g, '_')}.slice`;
}

/** The scope of berth-pause, which holds a pod's PID namespace, in the pod's slice. */
export function pauseScope(podId: string): string {
  return `${SCOPE_PREFIX}-pause-${podId}.scope`;
}

/** runc's "slice:prefix:name" for a container in `slice`. */
export function containerCgroupsPath(slice: string, containerId: string): string {
  return `${slice}:${SCOPE_PREFIX}:${containerId}`;
}

/** The cgroup directory (under each hierarchy) of a runc "slice:prefix:name" path. */
export function scopeCgroupPath(cgroupsPath: string): string {
  const [slice, prefix, name] = cgroupsPath.split(':');
  if (name === undefined || !prefix) throw invalidArgument(`"${cgroupsPath}" is not a slice:prefix:name cgroups path`);
  return `${expandSlice(slice || 'system.slice')}/${prefix}-${name}.scope`;
}

/** USEC_INFINITY: systemd's "no limit" for time and byte properties. */
const INFINITY = 0xffffffffffffffffn;

/**
 * The unit properties for `l`, as runc sets them on a unit
 * (libcontainer/cgroups/systemd v1.go/v2.go). What systemd has no property
 * for (hugetlb, v1 memsw, unified keys) is written to the files after.
 */
export function limitProperties(layout: CgroupLayout, l: PodLimits): UnitProperty[] {
  const v2 = layout.version === 2;
  const out: UnitProperty[] = [];
  if (l.memoryLimit !== undefined) out.push(prop.u64(v2 ? 'MemoryMax' : 'MemoryLimit', l.memoryLimit > 0 ? BigInt(l.memoryLimit) : INFINITY));
  if (v2 && l.memorySwapLimit !== undefined && l.memoryLimit !== undefined) {
    // v2 limits swap alone; the CRI's value is memory plus swap.
    out.push(prop.u64('MemorySwapMax', l.memorySwapLimit < 0 ? INFINITY : BigInt(Math.max(0, l.memorySwapLimit - l.memoryLimit))));
  }
  if (l.cpuShares !== undefined) out.push(v2 ? prop.u64('CPUWeight', sharesToWeight(l.cpuShares)) : prop.u64('CPUShares', l.cpuShares));
  if (l.cpuPeriod !== undefined) out.push(prop.u64('CPUQuotaPeriodUSec', l.cpuPeriod));
  if (l.cpuQuota !== undefined) {
    let perSec = INFINITY;
    if (l.cpuQuota > 0) {
      const period = BigInt(l.cpuPeriod || 100_000);
      // systemd keeps whole percents: round up to 10 ms so the files runc writes after stay below it.
      perSec = (BigInt(l.cpuQuota) * 1_000_000n) / period;
      if (perSec % 10_000n !== 0n) perSec = (perSec / 10_000n + 1n) * 10_000n;
    }
    out.push(prop.u64('CPUQuotaPerSecUSec', perSec));
  }
  if (v2 && l.cpusetCpus) out.push(prop.bytes('AllowedCPUs', cpuMask(l.cpusetCpus)));
  if (v2 && l.cpusetMems) out.push(prop.bytes('AllowedMemoryNodes', cpuMask(l.cpusetMems)));
  return out;
}

/** The accounting every berth unit turns on (as runc does), so its controllers exist in every hierarchy. */
export function accountingProperties(layout: CgroupLayout): UnitProperty[] {
  return [
    prop.bool('MemoryAccounting', true),
    prop.bool('CPUAccounting', true),
    prop.bool(layout.version === 2 ? 'IOAccounting' : 'BlockIOAccounting', true),
    prop.bool('TasksAccounting', true),
  ];
}

/** A cpuset list ("0-3,6") as systemd's bitmask: byte i bit j is CPU 8i+j. */
export function cpuMask(list: string): Buffer {
  const cpus: number[] = [];
  for (const part of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw invalidArgument(`cpuset "${list}" is not a list such as 0-3,6`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi > 8191) throw invalidArgument(`cpuset "${list}" has a bad range ${part}`);
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  const mask = Buffer.alloc(cpus.length ? Math.floor(Math.max(...cpus) / 8) + 1 : 0);
  for (const c of cpus) mask[c >> 3] |= 1 << (c & 7);
  return mask;
}
