// Facts about the host that shape every container spec, probed once at daemon
// start (probeHost) and passed to the builder, which stays synchronous.
import * as fs from 'node:fs';

/** Linux capability names by bit number (capability.h). */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
  'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

export interface HostInfo {
  /** 2 only on a pure cgroup v2 host; hybrid hosts are driven as v1 by runc. */
  cgroupVersion: 1 | 2;
  /** Capabilities berth itself holds (effective ∩ bounding): what "ALL" and privileged grant. */
  capabilities: string[];
  apparmorEnabled: boolean;
  /** A loaded profile to use for RuntimeDefault; none means RuntimeDefault runs without a profile. */
  apparmorDefaultProfile?: string;
  /** The lowest oom_score_adj berth may give a child (-1000 with CAP_SYS_RESOURCE). */
  minOomScoreAdj: number;
  swapControllerAvailable: boolean;
  hugetlbControllerAvailable: boolean;
}

/** Capability names from a /proc/<pid>/status hex mask such as "000001fffeffffff". */
export function capabilitiesFromMask(hex: string): string[] {
  const mask = BigInt('0x' + hex.trim());
  return CAPABILITY_NAMES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

function statusField(status: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(status);
  return m?.[1];
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Finds the lowest oom_score_adj berth can give a container. Lowering below the
 * current floor needs CAP_SYS_RESOURCE, which some hosts (and nested
 * containers) lack; runc would then fail every container with a negative
 * value, so the builder clamps instead (containerd's restrict_oom_score_adj).
 */
export function probeMinOomScoreAdj(): number {
  const file = '/proc/self/oom_score_adj';
  const own = Number((readText(file) ?? '0').trim()) || 0;
  // Tried on berthd itself and put back at once: raising it back is always allowed.
  try {
    fs.writeFileSync(file, '-1000');
  } catch {
    return own;
  }
  try {
    fs.writeFileSync(file, String(own));
  } catch {
    // stays at -1000: berthd is then the last the OOM killer picks, which is harmless
  }
  return -1000;
}

export function probeHost(): HostInfo {
  let cgroupVersion: 1 | 2 = 1;
  try {
    if (fs.statfsSync('/sys/fs/cgroup').type === CGROUP2_SUPER_MAGIC) cgroupVersion = 2;
  } catch {
    // no cgroup fs mounted: leave v1; runc will report the real problem
  }
  const status = readText('/proc/self/status') ?? '';
  const eff = capabilitiesFromMask(statusField(status, 'CapEff') ?? '0');
  const bnd = new Set(capabilitiesFromMask(statusField(status, 'CapBnd') ?? '0'));
  const apparmorEnabled = (readText('/sys/module/apparmor/parameters/enabled') ?? '').trim().startsWith('Y');
  let apparmorDefaultProfile: string | undefined;
  if (apparmorEnabled) {
    const loaded = readText('/sys/kernel/security/apparmor/profiles') ?? '';
    if (/^berth-default /m.test(loaded)) apparmorDefaultProfile = 'berth-default';
  }
  const controllers = cgroupVersion === 2 ? (readText('/sys/fs/cgroup/cgroup.controllers') ?? '').split(/\s+/) : [];
  const minOomScoreAdj = probeMinOomScoreAdj();
  return {
    cgroupVersion,
    capabilities: eff.filter((c) => bnd.has(c)),
    apparmorEnabled,
    apparmorDefaultProfile,
    minOomScoreAdj,
    swapControllerAvailable:
      cgroupVersion === 1 ? fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes') : controllers.includes('memory'),
    hugetlbControllerAvailable: cgroupVersion === 1 ? fs.existsSync('/sys/fs/cgroup/hugetlb') : controllers.includes('hugetlb'),
  };
}
