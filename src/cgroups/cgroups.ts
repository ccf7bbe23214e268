// Pod cgroups under the cgroupfs driver: detects the host's cgroup layout
// (v1/hybrid: one hierarchy per controller mount; v2: one unified tree),
// creates and removes a pod's cgroup directory in every hierarchy, and reads
// its CPU and memory usage for the stats RPCs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, internal, invalidArgument } from '../errors';
import { parseMountInfo, readMountInfoSync } from '../util/mountinfo';
import { settleAll } from '../util/settle';
import { nowNs } from '../util/time';
import { readCgroupFile, type CgroupFileReader } from './kept_files';

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

const V1_NON_CONTROLLER_OPTIONS = new Set(['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'clone_children', 'xattr', 'noprefix']);

/**
 * Reads the layout from mountinfo. A cgroup2 mount at `root` means unified
 * (v2); otherwise every cgroup (v1) mount under `root` is a hierarchy, and a
 * hybrid host's extra cgroup2 mount (root/unified) is not used for pods.
 */
export function detectCgroupLayout(root = '/sys/fs/cgroup', mountinfo?: string): CgroupLayout {
  const mounts = mountinfo === undefined ? readMountInfoSync() : parseMountInfo(mountinfo);
  const unified = mounts.find((m) => m.fsType === 'cgroup2' && m.mountPoint === root);
  if (unified) return { version: 2, hierarchies: [{ mountpoint: root, controllers: readV2Controllers(root) }] };
  const seen = new Set<string>();
  const hierarchies: CgroupHierarchy[] = [];
  for (const m of mounts) {
    if (m.fsType !== 'cgroup' || !m.mountPoint.startsWith(root + '/') || seen.has(m.mountPoint)) continue;
    seen.add(m.mountPoint);
    const controllers = m.superOptions.split(',').filter((o) => !V1_NON_CONTROLLER_OPTIONS.has(o) && !o.startsWith('release_agent='));
    hierarchies.push({ mountpoint: m.mountPoint, controllers });
  }
  if (hierarchies.length === 0) throw internal(`no cgroup hierarchy is mounted under ${root}`);
  const hybrid = mounts.find((m) => m.fsType === 'cgroup2' && m.mountPoint.startsWith(root + '/'));
  return { version: 1, hierarchies, ...(hybrid ? { hybridUnified: hybrid.mountPoint } : {}) };
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
 * returns it normalized. Systemd slice names are refused: they are the systemd driver's.
 */
export function validateCgroupPath(p: string): string {
  if (!p.startsWith('/')) {
    throw invalidArgument(
      `cgroup parent "${p}" is not an absolute cgroupfs path; berthd runs the cgroupfs driver: for systemd slices set runtime.cgroup_driver = "systemd"`,
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
  private files?: StatsFiles;

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
   * whether berth created the leaf (false: it existed, e.g. the kubelet made
   * it). Synchronous on purpose: the dozen mkdirs take about 0.7 ms in all,
   * and as threadpool jobs a lone pod start waited 5 ms for them.
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
   * made, is fine. A cgroup whose last processes are still exiting is busy
   * for a moment, so EBUSY is retried for up to `waitMs`.
   */
  async remove(waitMs = 2000): Promise<void> {
    const deadline = Date.now() + waitMs;
    const hybrid = this.layout.version === 1 && this.layout.hybridUnified ? [path.join(this.layout.hybridUnified, this.cgroupPath)] : [];
    // Side by side off the event loop (a teardown is not waited on as a start is).
    await settleAll([...this.dirs(), ...hybrid].map((dir) => removeCgroupDir(dir, deadline)));
  }

  /** Cumulative CPU time of the cgroup, nanoseconds (decimal string), or undefined when unreadable. */
  cpuUsageNs(read: CgroupFileReader = readCgroupFile): string | undefined {
    const f = this.statsFiles();
    if (this.layout.version === 2) {
      const usec = f.cpu === undefined ? undefined : readKeyed(read, f.cpu, CPU_STAT_V2).get('usage_usec');
      return usec === undefined ? undefined : (usec * 1000n).toString();
    }
    return f.cpu === undefined ? undefined : readNumber(read, f.cpu)?.toString();
  }

  /**
   * Current usage of the cgroup: CPU, memory (working set, RSS, page faults,
   * what is left under the limit), process count, and pressure (PSI) where
   * the kernel keeps it: the v2 tree, or a hybrid host's unified mirror.
   * Cgroup file reads only; nothing is walked. `scope` 'cpuMemory' reads
   * only what a CRI ContainerStats carries (CPU and memory: 4 files, not up
   * to 11): the kubelet asks for every container every 10 s.
   */
  stats(scope: StatsScope = 'all', read: CgroupFileReader = readCgroupFile): CgroupStats {
    const all = scope === 'all';
    const timestampNs = nowNs();
    const f = this.statsFiles();
    if (this.layout.version === 2) {
      const mem = f.memoryStat === undefined ? new Map<string, bigint>() : readKeyed(read, f.memoryStat, MEMORY_STAT_V2);
      return {
        timestampNs,
        cpuUsageNs: this.cpuUsageNs(read),
        ...memoryFigures({
          usage: f.memoryUsage === undefined ? undefined : readNumber(read, f.memoryUsage),
          limit: f.memoryLimit === undefined ? undefined : readNumber(read, f.memoryLimit),
          inactiveFile: mem.get('inactive_file'),
          rss: mem.get('anon'),
          mapped: mem.get('file_mapped'),
          pgfault: mem.get('pgfault'),
          pgmajfault: mem.get('pgmajfault'),
        }),
        processCount: all && f.pids !== undefined ? readNumber(read, f.pids)?.toString() : undefined,
        psi: all && f.pressureDir !== undefined ? readPressure(f.pressureDir) : undefined,
      };
    }
    const mem = f.memoryStat === undefined ? new Map<string, bigint>() : readKeyed(read, f.memoryStat, MEMORY_STAT_V1);
    return {
      timestampNs,
      cpuUsageNs: this.cpuUsageNs(read),
      ...memoryFigures({
        usage: f.memoryUsage === undefined ? undefined : readNumber(read, f.memoryUsage),
        limit: f.memoryLimit === undefined ? undefined : readNumber(read, f.memoryLimit),
        inactiveFile: mem.get('total_inactive_file'),
        rss: mem.get('total_rss'),
        mapped: mem.get('total_mapped_file'),
        pgfault: mem.get('total_pgfault'),
        pgmajfault: mem.get('total_pgmajfault'),
      }),
      processCount: all && f.pids !== undefined ? readNumber(read, f.pids)?.toString() : undefined,
      psi: all && f.pressureDir !== undefined ? readPressure(f.pressureDir) : undefined,
    };
  }

  /**
   * The files stats() reads, joined once per PodCgroup: the kubelet asks for
   * every container's stats every 10 s, and joining the paths anew made most
   * of the garbage a sample left (about 8 KiB of 9).
   */
  private statsFiles(): StatsFiles {
    if (this.files) return this.files;
    const join = (dir: string | undefined, file: string): string | undefined => (dir === undefined ? undefined : path.join(dir, file));
    if (this.layout.version === 2) {
      const dir = path.join(this.layout.hierarchies[0].mountpoint, this.cgroupPath);
      this.files = {
        cpu: join(dir, 'cpu.stat'),
        memoryStat: join(dir, 'memory.stat'),
        memoryUsage: join(dir, 'memory.current'),
        memoryLimit: join(dir, 'memory.max'),
        pids: join(dir, 'pids.current'),
        pressureDir: dir,
      };
      return this.files;
    }
    const dirOf = (controller: string): string | undefined => {
      const h = this.layout.hierarchies.find((x) => x.controllers.includes(controller));
      return h && path.join(h.mountpoint, this.cgroupPath);
    };
    const memDir = dirOf('memory');
    const unified = this.layout.hybridUnified;
    this.files = {
      cpu: join(dirOf('cpuacct'), 'cpuacct.usage'),
      memoryStat: join(memDir, 'memory.stat'),
      memoryUsage: join(memDir, 'memory.usage_in_bytes'),
      memoryLimit: join(memDir, 'memory.limit_in_bytes'),
      pids: join(dirOf('pids'), 'pids.current'),
      pressureDir: unified === undefined ? undefined : path.join(unified, this.cgroupPath),
    };
    return this.files;
  }
}

/** The files PodCgroup.stats reads (undefined: the controller is not mounted). */
interface StatsFiles {
  /** v2 cpu.stat, v1 cpuacct.usage. */
  cpu?: string;
  memoryStat?: string;
  memoryUsage?: string;
  memoryLimit?: string;
  pids?: string;
  /** Where the *.pressure files are: the v2 tree, or a hybrid host's unified mirror. */
  pressureDir?: string;
}

/** What PodCgroup.stats reads: everything, or CPU and memory alone. */
export type StatsScope = 'all' | 'cpuMemory';

/** One resource's pressure: cumulative stall time, microseconds (decimal strings). */
export interface PressureTotals {
  /** Some tasks were stalled ("waiting" in cAdvisor's names). */
  someUsec: string;
  /** All non-idle tasks were stalled ("stalled"); absent for cpu on older kernels. */
  fullUsec?: string;
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
  /** Limit minus working set; absent without a limit. */
  memoryAvailableBytes?: string;
  /** Cumulative page faults (minor and major), and major ones alone. */
  pageFaults?: string;
  majorPageFaults?: string;
  /** Tasks in the cgroup (pids controller). */
  processCount?: string;
  /** Pressure stall totals by resource, where the kernel has PSI for this cgroup. */
  psi?: { cpu?: PressureTotals; memory?: PressureTotals; io?: PressureTotals };
}

/** Above this a v1 memory limit means "none" (the kernel's PAGE_COUNTER_MAX in bytes is ~2^63). */
const UNLIMITED_V1 = 1n << 62n;

function memoryFigures(m: {
  usage?: bigint;
  limit?: bigint;
  inactiveFile?: bigint;
  rss?: bigint;
  mapped?: bigint;
  pgfault?: bigint;
  pgmajfault?: bigint;
}): Pick<CgroupStats, 'memoryUsageBytes' | 'memoryWorkingSetBytes' | 'memoryRssBytes' | 'memoryMappedFileBytes' | 'memoryAvailableBytes' | 'pageFaults' | 'majorPageFaults'> {
  let workingSet: bigint | undefined;
  if (m.usage !== undefined) {
    const inactive = m.inactiveFile ?? 0n;
    workingSet = inactive < m.usage ? m.usage - inactive : 0n;
  }
  let available: bigint | undefined;
  if (m.limit !== undefined && m.limit < UNLIMITED_V1 && workingSet !== undefined) {
    available = m.limit > workingSet ? m.limit - workingSet : 0n;
  }
  return {
    memoryUsageBytes: m.usage?.toString(),
    memoryWorkingSetBytes: workingSet?.toString(),
    memoryRssBytes: m.rss?.toString(),
    memoryMappedFileBytes: m.mapped?.toString(),
    memoryAvailableBytes: available?.toString(),
    pageFaults: m.pgfault?.toString(),
    majorPageFaults: m.pgmajfault?.toString(),
  };
}

/** rmdir of one cgroup directory, retrying EBUSY (its last processes still exiting) until `deadline`. */
async function removeCgroupDir(dir: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      await fs.promises.rmdir(dir);
      return;
    } catch (err) {
      const code = errnoCode(err);
      // Never made (a rollback of a create that failed early): ENAMETOOLONG cannot have been created either.
      if (code === 'ENOENT' || code === 'ENAMETOOLONG') return;
      if (code === 'EBUSY' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const procs = readProcs(dir);
      throw internal(`cannot remove cgroup ${dir}: ${errorMessage(err)}${procs.length ? `; processes still in it: ${procs.join(' ')}` : ''}`, err);
    }
  }
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

/** cpu.pressure, memory.pressure, io.pressure of a v2 cgroup directory; undefined when the kernel has none. */
export function readPressure(dir: string): CgroupStats['psi'] {
  const out: NonNullable<CgroupStats['psi']> = {};
  for (const r of ['cpu', 'memory', 'io'] as const) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, `${r}.pressure`), 'utf8');
    } catch {
      continue;
    }
    const totals = parsePressure(text);
    if (totals) out[r] = totals;
  }
  return Object.keys(out).length ? out : undefined;
}

/** Parses "some avg10=.. avg60=.. avg300=.. total=N" / "full ..." lines. */
export function parsePressure(text: string): PressureTotals | undefined {
  let some: string | undefined;
  let full: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(some|full) .*\btotal=(\d+)/.exec(line);
    if (!m) continue;
    if (m[1] === 'some') some = m[2];
    else full = m[2];
  }
  return some === undefined ? undefined : { someUsec: some, ...(full !== undefined ? { fullUsec: full } : {}) };
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

function readNumber(read: CgroupFileReader, file: string): bigint | undefined {
  const text = read(file)?.trim();
  if (text === undefined || text === 'max') return undefined;
  try {
    return BigInt(text);
  } catch {
    return undefined;
  }
}

/** Keys of a "key value" file with the line prefixes lineValue looks for, built once per set of keys. */
interface KeyedField {
  key: string;
  /** "key ", at the start of the text. */
  first: string;
  /** "\nkey ", anywhere after. */
  later: string;
}

function keyedFields(keys: readonly string[]): readonly KeyedField[] {
  return keys.map((key) => ({ key, first: `${key} `, later: `\n${key} ` }));
}

const CPU_STAT_V2 = keyedFields(['usage_usec']);
const MEMORY_STAT_V2 = keyedFields(['inactive_file', 'anon', 'file_mapped', 'pgfault', 'pgmajfault']);
const MEMORY_STAT_V1 = keyedFields(['total_inactive_file', 'total_rss', 'total_mapped_file', 'total_pgfault', 'total_pgmajfault']);

/** The `fields` of a "key value" file (cpu.stat, memory.stat) that are present and numeric; memory.stat has ~40 lines, a few are wanted. */
function readKeyed(read: CgroupFileReader, file: string, fields: readonly KeyedField[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const text = read(file);
  if (text === undefined) return out;
  for (const f of fields) {
    const v = lineValue(text, f);
    if (v !== undefined && /^\d+$/.test(v)) out.set(f.key, BigInt(v));
  }
  return out;
}

/** The value of the "key value" line of `field`, without parsing the other lines. */
function lineValue(text: string, field: KeyedField): string | undefined {
  let at = 0;
  if (!text.startsWith(field.first)) {
    const nl = text.indexOf(field.later);
    if (nl < 0) return undefined;
    at = nl + 1;
  }
  const from = at + field.first.length;
  const to = text.indexOf('\n', from);
  return text.slice(from, to < 0 ? undefined : to);
}
