// Functional probe of a runtime handler: `<binary> create` of a minimal
// container, then `delete -f`. A runtime that prints its version can still be
// unable to create anything on this host (Debian's crun 1.8 on a hybrid cgroup
// layout), and that must show in Status at start, not at the first pod.
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { detectCgroupLayout, PodCgroup } from '../cgroups/cgroups';
import { errorMessage } from '../errors';
import { mountsUnder } from '../util/mountinfo';
import { NamespacePinner } from '../sandbox/namespaces/pinner';
import { mountOverlay } from '../snapshotter/mount';
import { ContainerRuntime } from './container_runtime';
import { sysMount } from './spec/mounts';
import { RUNC_SYSTEMD_ARGS, scopeCgroupPath } from '../cgroups/systemd/units';
import { ensureTraversable, IdmapHelper, toOciMappings, type UserNamespaceMaps } from './idmap';
import type { OciSpec } from './spec/oci_types';

export const PROBE_TIMEOUT_MS = 10000;

export interface ContainerProbeOptions {
  /** Parent of the probe's private temp dir (bundle, rootfs, runtime --root, logs). Created if missing. */
  workDir: string;
  /** cgroupfs path of the probe container; default /berth-probe-<random>. Removed afterwards in every hierarchy. */
  cgroupPath?: string;
  /** Probe under the systemd cgroup driver: runc --systemd-cgroup, the container a scope in system.slice. */
  systemdCgroup?: boolean;
  /** Bound on create plus delete; clean-up after a failure may add a few seconds. */
  timeoutMs?: number;
}

export type ContainerProbeResult =
  | { ok: true }
  /** `stage` says which step failed; `message` is the runtime's own error. */
  | { ok: false; stage: 'create' | 'delete'; message: string };

/** The executable named in process.args. It is never started (only `create` runs), so an empty executable file suffices. */
const PROBE_EXECUTABLE = '/berth-probe';

function probeSpec(cgroupPath: string): OciSpec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [PROBE_EXECUTABLE],
      env: ['PATH=/'],
      cwd: '/',
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'berth-probe',
    // runc's init reads /proc/self/fd before it waits to be started.
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] }],
    linux: {
      namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'ipc' }, { type: 'uts' }],
      cgroupsPath: cgroupPath,
    },
  };
}

/** Removes the probe's cgroup in every hierarchy (hybrid: the cgroup2 mirror too); best effort. */
async function removeProbeCgroup(cgroupPath: string): Promise<void> {
  try {
    await new PodCgroup(detectCgroupLayout(), cgroupPath).remove(2000);
  } catch {
    // Left for the operator to see; the probe result stands.
  }
}

/** A probe's own part: writes bundle/config.json (and whatever the spec needs) in `dir`; `cleanup` undoes the rest. */
interface ProbeBundle {
  build(dir: string, bundle: string, cgroupPath: string): Promise<void>;
  /** Before the temp dir is removed; it is left in place when this throws. */
  cleanup?(dir: string): Promise<void>;
}

/**
 * Creates and deletes a minimal container with `binary`: mount, pid, ipc and
 * uts namespaces, a read-only rootfs holding one executable, a cgroup of its
 * own. Never throws; everything it made is removed before it returns.
 */
export async function probeContainerCreate(binary: string, opts: ContainerProbeOptions): Promise<ContainerProbeResult> {
  return runProbe(binary, opts, {
    async build(_dir, bundle, cgroupPath) {
      const rootfs = path.join(bundle, 'rootfs');
      await fsp.mkdir(path.join(rootfs, 'proc'), { recursive: true, mode: 0o755 });
      await fsp.writeFile(path.join(rootfs, PROBE_EXECUTABLE), '', { mode: 0o755 });
      await fsp.writeFile(path.join(bundle, 'config.json'), JSON.stringify(probeSpec(cgroupPath)), { mode: 0o600 });
    },
  });
}

/** What a handler can do with user namespaces on this host, as probed at start. */
export interface UsernsSupport {
  /** A container joined a pinned user namespace with an idmapped overlay rootfs. */
  ok: boolean;
  problem: string;
  /** The same, on the host network (no network namespace of the pod's own). */
  hostNetwork: boolean;
  hostNetworkProblem: string;
}

export interface UsernsProbeOptions extends ContainerProbeOptions {
  /** berth-pinns; default: found as for pods. */
  pinns?: string;
  /** berth's directory above workDir whose subdirectories may be made searchable (default workDir). */
  ownedDir?: string;
}

/** Maps of the probe's user namespace: any unprivileged range does. */
const PROBE_MAPS: UserNamespaceMaps = {
  uids: [{ containerId: 0, hostId: 100000, length: 65536 }],
  gids: [{ containerId: 0, hostId: 100000, length: 65536 }],
};

/**
 * Runs a container as a pod in a user namespace would: user (and, unless
 * `hostNetwork`, network) namespace pinned by berth-pinns with PROBE_MAPS,
 * rootfs an overlay over an idmapped layer (berth's own idmapping, as for
 * real containers), sysfs mounted. Never throws.
 */
export async function probeUserNamespace(
  binary: string,
  opts: UsernsProbeOptions & { hostNetwork?: boolean },
): Promise<ContainerProbeResult> {
  const helper = new IdmapHelper(opts.pinns);
  const pinner = new NamespacePinner(opts.pinns);
  return runProbe(binary, opts, {
    async build(dir, bundle, cgroupPath) {
      const nsDir = path.join(dir, 'ns');
      const pinned = await pinner.pin({
        nsDir, net: !opts.hostNetwork, ipc: false, uts: false, pid: false, userns: PROBE_MAPS, sysctls: {}, cgroupProcs: [],
      });
      const layer = path.join(dir, 'layer');
      for (const d of ['proc', 'sys']) await fsp.mkdir(path.join(layer, d), { recursive: true, mode: 0o755 });
      await fsp.writeFile(path.join(layer, PROBE_EXECUTABLE), '', { mode: 0o755 });
      const upper = path.join(dir, 'upper');
      await fsp.mkdir(path.join(upper, 'fs'), { recursive: true, mode: 0o755 });
      await fsp.mkdir(path.join(upper, 'work'), { mode: 0o700 });
      const root = PROBE_MAPS.uids[0];
      await fsp.chown(path.join(upper, 'fs'), root.hostId, root.hostId);
      const rootfs = path.join(bundle, 'rootfs');
      await fsp.mkdir(rootfs, { recursive: true, mode: 0o755 });
      await ensureTraversable(rootfs, opts.ownedDir ?? opts.workDir);
      const lower = path.join(dir, 'lower');
      await helper.idmap(layer, lower, { userns: pinned.nsPaths.user as string });
      try {
        await mountOverlay(`lowerdir=${lower},upperdir=${upper}/fs,workdir=${upper}/work`, rootfs, dir);
      } finally {
        // The overlay keeps its own private copy of the idmapped layer.
        await helper.umount([lower]);
      }
      const spec = probeSpec(cgroupPath);
      spec.root.readonly = false;
      spec.mounts.push(sysMount(!opts.hostNetwork, false), {
        destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      });
      spec.linux.namespaces.unshift({ type: 'user', path: pinned.nsPaths.user });
      if (pinned.nsPaths.net) spec.linux.namespaces.push({ type: 'network', path: pinned.nsPaths.net });
      spec.linux.uidMappings = toOciMappings(PROBE_MAPS.uids);
      spec.linux.gidMappings = toOciMappings(PROBE_MAPS.gids);
      await fsp.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
    },
    async cleanup(dir) {
      await helper.umount([path.join(dir, 'bundle', 'rootfs'), path.join(dir, 'lower')]);
      await pinner.unpin(path.join(dir, 'ns'));
    },
  });
}

/** Both user namespace probes, one after the other (they share nothing but the handler). */
export async function probeUsernsSupport(binary: string, opts: UsernsProbeOptions): Promise<UsernsSupport> {
  const pod = await probeUserNamespace(binary, opts);
  if (!pod.ok) {
    const problem = `cannot ${pod.stage} a container in a user namespace: ${pod.message}`;
    return { ok: false, problem, hostNetwork: false, hostNetworkProblem: problem };
  }
  const host = await probeUserNamespace(binary, { ...opts, hostNetwork: true });
  return {
    ok: true,
    problem: '',
    hostNetwork: host.ok,
    hostNetworkProblem: host.ok ? '' : `cannot ${host.stage} a container in a user namespace on the host network: ${host.message}`,
  };
}

async function runProbe(binary: string, opts: ContainerProbeOptions, bundleOf: ProbeBundle): Promise<ContainerProbeResult> {
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const suffix = randomBytes(6).toString('hex');
  const cgroupPath = opts.cgroupPath ?? (opts.systemdCgroup ? `system.slice:berth-probe:${suffix}` : `/berth-probe-${suffix}`);
  const id = `berth-probe-${suffix}`;
  let dir: string | undefined;
  let root = '';
  const globalArgs = opts.systemdCgroup ? [...RUNC_SYSTEMD_ARGS] : [];
  const runtime = new ContainerRuntime(() => ({ name: 'probe', binary, root, tmpDir: opts.workDir, globalArgs }));
  try {
    await fsp.mkdir(opts.workDir, { recursive: true, mode: 0o700 });
    dir = await fsp.mkdtemp(path.join(opts.workDir, 'probe-'));
    const bundle = path.join(dir, 'bundle');
    await fsp.mkdir(bundle, { recursive: true, mode: 0o700 });
    await bundleOf.build(dir, bundle, cgroupPath);
    root = path.join(dir, 'root');
    const ref = { id, runtimeHandler: 'probe', shimDir: path.join(dir, 'shim') };
    // Through berth-shim, as for a real container: it is the subreaper that
    // reaps the container's init once `delete` kills it.
    try {
      await runtime.create(ref, { bundle, timeoutMs });
    } catch (err) {
      return { ok: false, stage: 'create', message: errorMessage(err).replace(`creating container ${id}: `, '') };
    }
    try {
      await withTimeout(runtime.delete(ref, true), Math.max(1000, deadline - Date.now()), 'delete');
    } catch (err) {
      return { ok: false, stage: 'delete', message: errorMessage(err) };
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, stage: 'create', message: errorMessage(err) };
  } finally {
    if (dir) {
      // Whatever happened above, nothing may stay: container, shim, cgroup, files.
      const ref = { id, runtimeHandler: 'probe', shimDir: path.join(dir, 'shim') };
      if (root) await withTimeout(runtime.delete(ref, true), 5000, 'delete').catch(() => undefined);
      // The shim leaves once the container is gone; one still running (a runtime
      // create that hangs) is killed together with the runtime it waits for.
      await runtime.releaseShim(ref, {
        exitWaitMs: 5000,
        graceMs: 1000,
        waitMs: 5000,
        kill: killTree,
      });
      // Under systemd, runc's delete stopped the scope; its directories go if anything is left.
      await removeProbeCgroup(opts.systemdCgroup ? scopeCgroupPath(cgroupPath) : cgroupPath);
      let clean = true;
      if (bundleOf.cleanup) clean = await bundleOf.cleanup(dir).then(() => true, () => false);
      // Never rm -r through a mount left behind (it would descend into it).
      if (clean && mountsUnder(dir).length === 0) await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      // Shared by concurrent probes: only the last one out removes it.
      await fsp.rmdir(opts.workDir).catch(() => undefined);
    }
  }
}

/** `work`, or a rejection once `ms` passed (start-up must not wait on a hung runtime). */
async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Pids whose parent is `pid`, from /proc/<n>/stat. */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await fsp.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await fsp.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(name));
  }
  return out;
}

/** SIGKILLs `pid` and every process below it, children first found while their parents still hold them. */
async function killTree(pid: number): Promise<void> {
  const all: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const next = queue.shift() as number;
    all.push(next);
    queue.push(...(await childrenOf(next)));
  }
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

