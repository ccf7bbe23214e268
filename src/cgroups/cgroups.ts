// Pod cgroups under the cgroupfs driver: detects the host's cgroup layout
// (v1/hybrid: one hierarchy per controller mount; v2: one unified tree),
// creates and removes a pod's cgroup directory in every hierarchy, and reads
// its CPU and memory usage for the stats RPCs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, internal, invalidArgument } from '../errors';
import { nowNs } from '../util/time';

export interface CgroupHierarchy {
  /** Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory. */
  mountpoint: string;
  /** Controllers bound to it (v1: from the mount options, e.g. ["cpu","cpuacct"]; v2: from cgroup.controllers). */
  controllers: string[];
}

export type CgroupLayout =
  | {
      version: 1;
      hierarchies: CgroupHierarchy[];
      /**
       * A hybrid host's cgroup2 mount (root/unified). Pods are not placed
       * there, but runc mirrors container cgroups into it, so the pod's
       * directory appears there too and must go with the pod.
       */
      hybridUnified?: string;
    }
  | { version: 2; hierarchies: [CgroupHierarchy] };

interface MountEntry {
  mountpoint: string;
  fstype: string;
  superOptions: string[];
}

/** Unescapes the octal escapes (\040 for space...) mountinfo uses in paths. */
export function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function readMounts(mountinfo: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of mountinfo.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    out.push({ mountpoint: unescapeMountPath(l[4]), fstype: r[0], superOptions: (r[2] ?? '').split(',') });
  }
  return out;
}

const V1_NON_CONTROLLER_OPTIONS = new Set(['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'clone_children', 'xattr', 'noprefix']);

/**
 * Reads the layout from mountinfo. A cgroup2 mount at `root` means unified
 * (v2); otherwise every cgroup (v1) mount under `root` is a hierarchy, and a
 * hybrid host's extra cgroup2 mount (root/unified) is not used for pods.
 */
export function detectCgroupLayout(root = '/sys/fs/cgroup', mountinfo?: string): CgroupLayout {
  const mounts = readMounts(mountinfo ?? fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const unified = mounts.find((m) => m.fstype === 'cgroup2' && m.mountpoint === root);
  if (unified) return { version: 2, hierarchies: [{ mountpoint: root, controllers: readV2Controllers(root) }] };
  const seen = new Set<string>();
  const hierarchies: CgroupHierarchy[] = [];
  for (const m of mounts) {
    if (m.fstype !== 'cgroup' || !m.mountpoint.startsWith(root + '/') || seen.has(m.mountpoint)) continue;
    seen.add(m.mountpoint);
    const controllers = m.superOptions.filter((o) => !V1_NON_CONTROLLER_OPTIONS.has(o) && !o.startsWith('release_agent='));
    hierarchies.push({ mountpoint: m.mountpoint, controllers });
  }
  if (hierarchies.length === 0) throw internal(`no cgroup hierarchy is mounted under ${root}`);
  const hybrid = mounts.find((m) => m.fstype === 'cgroup2' && m.mountpoint.startsWith(root + '/'));
  return { version: 1, hierarchies, ...(hybrid ? { hybridUnified: hybrid.mountpoint } : {}) };
}

/** A v2 tree mounted somewhere else (the hybrid /sys/fs/cgroup/unified), for tests and special setups. */
export function unifiedLayoutAt(mountpoint: string): CgroupLayout {
  return { version: 2, hierarchies: [{ mountpoint, controllers: readV2Controllers(mountpoint) }] };
}

function readV2Controllers(dir: string): string[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/** The longest file name Linux allows (a cgroup directory is one). */
const NAME_MAX = 255;

/**
 * Validates a cgroupfs-style cgroup path ("/kubepods/burstable/pod<uid>") and
 * returns it normalized. Systemd slice names are refused: berth drives cgroupfs.
 */
export function validateCgroupPath(p: string): string {
  if (!p.startsWith('/')) {
    throw invalidArgument(
      `cgroup parent "${p}" is not an absolute cgroupfs path; berth uses the cgroupfs driver (set the kubelet's --cgroup-driver=cgroupfs)`,
    );
  }
  const parts = p.split('/').filter(Boolean);
  if (parts.length === 0 || parts.some((s) => s === '.' || s === '..' || s.includes('\0'))) {
    throw invalidArgument(`cgroup parent "${p}" is not a valid cgroup path`);
  }
  // A longer component cannot be created (ENAMETOOLONG): refuse it before anything is made.
  if (parts.some((s) => Buffer.byteLength(s) > NAME_MAX)) {
    throw invalidArgument(`cgroup path "${p}" has a component longer than ${NAME_MAX} bytes`);
  }
  return '/' + parts.join('/');
}

/** The cgroup of a pod in one layout: directory per hierarchy. */
export class PodCgroup {
  constructor(
    readonly layout: CgroupLayout,
    /** The cgroup path, e.g. /kubepods/burstable/pod1234. */
    readonly cgroupPath: string,
  ) {}

  dirs(): string[] {
    return this.layout.hierarchies.map((h) => path.join(h.mountpoint, this.cgroupPath));
  }

  /** The cgroup.procs files, one per hierarchy: a process written there joins the pod cgroup. */
  procsFiles(): string[] {
    return this.dirs().map((d) => path.join(d, 'cgroup.procs'));
  }

  /** Whether the directory exists in every hierarchy. */
  exists(): boolean {
    return this.dirs().every((d) => fs.existsSync(d));
  }

  /**
   * Creates the directory in every hierarchy (parents included). Returns
   * whether berth created the leaf (false: it existed, e.g. the kubelet made it).
   */
  create(): boolean {
    let created = false;
    for (const h of this.layout.hierarchies) {
      const v2 = this.layout.version === 2;
      // v2: each level must delegate the available controllers to its children.
      created = this.makeLevels(h.mountpoint, v2 ? delegateControllers : undefined) || created;
      // cpuset starts empty in v1: a child must copy its parent's cpus/mems or no task can join it.
      if (!v2 && h.controllers.includes('cpuset')) this.fillCpuset(h.mountpoint);
    }
    return created;
  }

  private fillCpuset(mountpoint: string): void {
    let parent = mountpoint;
    for (const part of this.cgroupPath.split('/').filter(Boolean)) {
      const dir = path.join(parent, part);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const mine = path.join(dir, f);
        if (fs.readFileSync(mine, 'utf8').trim() === '') {
          fs.writeFileSync(mine, fs.readFileSync(path.join(parent, f), 'utf8').trim() || '\n');
        }
      }
      parent = dir;
    }
  }

  /**
   * mkdir of each level of the path in one hierarchy, from the top: one step
   * per level whatever the filesystem answers (a recursive mkdir retries on
   * ENOENT). `beforeLevel` prepares a parent for its child. Returns whether
   * berth created the leaf.
   */
  private makeLevels(mountpoint: string, beforeLevel?: (parent: string) => void): boolean {
    let dir = mountpoint;
    let created = false;
    for (const part of this.cgroupPath.split('/').filter(Boolean)) {
      beforeLevel?.(dir);
      dir = path.join(dir, part);
      try {
        fs.mkdirSync(dir, { mode: 0o755 });
        created = true;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw internal(`cannot create cgroup ${dir}: ${errorMessage(err)}`, err);
        created = false;
      }
    }
    return created;
  }

  /**
   * Removes the leaf directory in every hierarchy. Already gone, or never
   * made, is fine. A
   * cgroup whose last processes are still exiting is busy for a moment, so
   * EBUSY is retried for up to `waitMs`.
   */
  async remove(waitMs = 2000): Promise<void> {
    const deadline = Date.now() + waitMs;
    const hybrid = this.layout.version === 1 && this.layout.hybridUnified ? [path.join(this.layout.hybridUnified, this.cgroupPath)] : [];
    for (const dir of [...this.dirs(), ...hybrid]) {
      for (;;) {
        try {
          fs.rmdirSync(dir);
          break;
        } catch (err) {
          const code = errnoCode(err);
          // Never made (a rollback of a create that failed early): ENAMETOOLONG cannot have been created either.
          if (code === 'ENOENT' || code === 'ENAMETOOLONG') break;
          if (code === 'EBUSY' && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          const procs = readProcs(dir);
          throw internal(
            `cannot remove cgroup ${dir}: ${errorMessage(err)}${procs.length ? `; processes still in it: ${procs.join(' ')}` : ''}`,
            err,
          );
        }
      }
    }
  }

  /** Current CPU and memory usage of the pod cgroup. */
  stats(): CgroupStats {
    const timestampNs = nowNs();
    if (this.layout.version === 2) {
      const dir = path.join(this.layout.hierarchies[0].mountpoint, this.cgroupPath);
      const cpu = readKeyed(path.join(dir, 'cpu.stat'));
      const mem = readKeyed(path.join(dir, 'memory.stat'));
      const usage = readNumber(path.join(dir, 'memory.current'));
      const usageUsec = cpu.get('usage_usec');
      return {
        timestampNs,
        cpuUsageNs: usageUsec === undefined ? undefined : (usageUsec * 1000n).toString(),
        ...memoryFigures(usage, mem.get('inactive_file'), mem.get('anon'), mem.get('file_mapped')),
      };
    }
    const dirOf = (controller: string): string | undefined => {
      const h = this.layout.hierarchies.find((x) => x.controllers.includes(controller));
      return h && path.join(h.mountpoint, this.cgroupPath);
    };
    const cpuDir = dirOf('cpuacct');
    const memDir = dirOf('memory');
    const cpu = cpuDir ? readNumber(path.join(cpuDir, 'cpuacct.usage')) : undefined;
    const mem = memDir ? readKeyed(path.join(memDir, 'memory.stat')) : new Map<string, bigint>();
    const usage = memDir ? readNumber(path.join(memDir, 'memory.usage_in_bytes')) : undefined;
    return {
      timestampNs,
      cpuUsageNs: cpu?.toString(),
      ...memoryFigures(usage, mem.get('total_inactive_file'), mem.get('total_rss'), mem.get('total_mapped_file')),
    };
  }
}

export interface CgroupStats {
  timestampNs: string;
  /** Cumulative CPU time, nanoseconds (decimal string, as CRI's uint64). */
  cpuUsageNs?: string;
  memoryUsageBytes?: string;
  /** Usage minus inactive file cache: what the kubelet evicts on. */
  memoryWorkingSetBytes?: string;
  memoryRssBytes?: string;
  memoryMappedFileBytes?: string;
}

function memoryFigures(
  usage: bigint | undefined,
  inactiveFile: bigint | undefined,
  rss: bigint | undefined,
  mapped: bigint | undefined,
): Omit<CgroupStats, 'timestampNs' | 'cpuUsageNs'> {
  let workingSet: bigint | undefined;
  if (usage !== undefined) {
    const inactive = inactiveFile ?? 0n;
    workingSet = inactive < usage ? usage - inactive : 0n;
  }
  return {
    memoryUsageBytes: usage?.toString(),
    memoryWorkingSetBytes: workingSet?.toString(),
    memoryRssBytes: rss?.toString(),
    memoryMappedFileBytes: mapped?.toString(),
  };
}

/** v2: enables in `dir` every controller it has for its children. */
function delegateControllers(dir: string): void {
  const controllers = readV2Controllers(dir);
  const enabled = new Set(readSubtree(dir));
  const missing = controllers.filter((c) => !enabled.has(c));
  if (missing.length === 0) return;
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
  } catch {
    // Some controllers cannot be enabled here (e.g. processes in an inner node); the pod still works without them.
  }
}

function readSubtree(dir: string): string[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

function readProcs(dir: string): string[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function readNumber(file: string): bigint | undefined {
  try {
    return BigInt(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function readKeyed(file: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v && /^\d+$/.test(v)) out.set(k, BigInt(v));
  }
  return out;
}
