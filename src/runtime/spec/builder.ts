// buildContainerSpec: CRI ContainerConfig + pod + image config -> OCI config.json.
// The rules follow containerd's CRI plugin (and Docker, where kubelet relies on
// Docker's semantics, e.g. for command/args). Deterministic for a given input
// and filesystem: host facts come in through HostInfo (probed once).
import * as os from 'node:os';
import * as path from 'node:path';
import { constants as osConstants } from 'node:os';
import { failedPrecondition, invalidArgument } from '../../errors';
import type { KeyValue__Output } from '../../gen/runtime/v1/KeyValue';
import type { ContainerConfig__Output } from '../../gen/runtime/v1/ContainerConfig';
import type { PodSandboxConfig__Output } from '../../gen/runtime/v1/PodSandboxConfig';
import type { UserNamespace__Output } from '../../gen/runtime/v1/UserNamespace';
import { buildDevices, defaultDeviceRules, hostDevices } from './devices';
import { sameMaps, toOciMappings, type UserNamespaceMaps } from '../idmap';
import type { HostInfo } from './host_info';
import type { MountInfoEntry } from '../../util/mountinfo';
import { buildMounts } from './mounts';
import {
  OCI_VERSION,
  type OciLinuxDevice,
  type OciLinuxResources,
  type OciNamespace,
  type OciProcess,
  type OciRlimit,
  type OciSpec,
  type OciUser,
} from './oci_types';
import { clampOomScoreAdj, int64, toOciResources, type Warn } from './resources';
import { resolveUser } from './rootfs_users';
import { apparmorChoice, resolveApparmor, resolveCapabilities, resolveSeccomp, seccompChoice } from './security';

/** The parts of an OCI image config (`config` of the image JSON) a container spec uses. */
export interface ImageConfig {
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
}

/** A pod-level namespace: the host's, or one pinned by the sandbox at `path`. */
export type NamespaceRef = { kind: 'host' } | { kind: 'pinned'; path: string };

/** What the sandbox set up for its containers (berth pins namespaces without a pause container). */
export interface SandboxRuntimeInfo {
  sandboxId: string;
  /** The pod's hostname ("" with host network: the node's name is used for $HOSTNAME). */
  hostname: string;
  network: NamespaceRef;
  ipc: NamespaceRef;
  uts: NamespaceRef;
  /** The pod's pid namespace, when it has one (share_process_namespace) or uses the host's. */
  pid?: NamespaceRef;
  /** The pod's user namespace (userns mode POD): the pinned file and its maps. */
  user?: { path: string } & UserNamespaceMaps;
  hostnamePath?: string;
  hostsPath?: string;
  resolvConfPath?: string;
  /** Host directory bind-mounted at /dev/shm (the pod's shm, or /dev/shm for host IPC). */
  shmPath?: string;
  /** cgroupfs parent, e.g. /kubepods/burstable/pod<uid>; "" means /berth. */
  cgroupParent: string;
  /** The container's linux.cgroupsPath as the cgroup driver names it (systemd: "<slice>:berth:<id>"); default <cgroupParent>/<id>. */
  cgroupsPath?: string;
  /** Pod-level pids limit applied to each container's cgroup. */
  pidsLimit?: number;
}

export interface ContainerSpecInput {
  containerId: string;
  config: ContainerConfig__Output;
  sandboxConfig: PodSandboxConfig__Output;
  image: ImageConfig;
  /** Image reference as the user gave it, for the image-name annotation. */
  imageName: string;
  /** The container's root filesystem (absolute, or relative to the bundle). */
  rootfsPath: string;
  sandbox: SandboxRuntimeInfo;
  host: HostInfo;
  /** pid namespace of the target container when namespace_options.pid is TARGET. */
  targetPidNamespacePath?: string;
  /** process.rlimits of every container (config runtime.default_rlimits): nothing inherited from berthd. */
  rlimits?: OciRlimit[];
  /** Whether the runtime handler supports "rro" mounts (from `runc features`). */
  recursiveReadOnlyMounts?: boolean;
  /** The process user, already resolved (resolveContainerUser); default: resolved from rootfsPath here. */
  user?: OciUser;
  /** Injectable for tests; default: enumerate /dev and /proc/self/mountinfo. */
  hostDevices?: () => OciLinuxDevice[];
  mountInfo?: () => MountInfoEntry[];
  warn?: Warn;
}

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

export const ANNOTATIONS = {
  containerType: 'io.kubernetes.cri.container-type',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  sandboxName: 'io.kubernetes.cri.sandbox-name',
  sandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  sandboxUid: 'io.kubernetes.cri.sandbox-uid',
  containerName: 'io.kubernetes.cri.container-name',
  imageName: 'io.kubernetes.cri.image-name',
} as const;

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Docker's rules, which kubelet documents for command/args: a CRI command
 * replaces the image Entrypoint and drops its Cmd; args alone replace Cmd.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * KEY=value of a CRI env entry. Values are bytes since cri-api v0.36; the OCI
 * spec is JSON, whose strings cannot carry invalid UTF-8 (runc would read
 * U+FFFD in its place), so such a value is refused rather than altered.
 */
function envEntry(kv: KeyValue__Output): string {
  try {
    return `${kv.key}=${UTF8.decode(kv.value)}`;
  } catch {
    throw invalidArgument(`environment variable ${kv.key}: its value is not valid UTF-8, which an OCI spec cannot carry`);
  }
}

export function resolveArgs(command: readonly string[], args: readonly string[], image: ImageConfig): string[] {
  let cmd = [...command];
  let rest = [...args];
  if (cmd.length === 0) {
    if (rest.length === 0) rest = [...(image.Cmd ?? [])];
    const ep = image.Entrypoint ?? [];
    // An Entrypoint of [""] is Docker's way of saying "no entrypoint".
    if (!(ep.length === 1 && ep[0] === '')) cmd = [...ep];
  }
  const all = [...cmd, ...rest];
  if (all.length === 0) throw invalidArgument('no command specified: the container config and the image give neither command nor args');
  return all;
}

/**
 * Merges environment lists: a later KEY=value replaces an earlier KEY in place,
 * a new key is appended, and a bare KEY (no "=") removes it.
 */
export function mergeEnv(...lists: ReadonlyArray<readonly string[]>): string[] {
  const out: string[] = [];
  const index = new Map<string, number>();
  for (const list of lists) {
    for (const entry of list) {
      const eq = entry.indexOf('=');
      const key = eq < 0 ? entry : entry.slice(0, eq);
      if (key === '') continue;
      const at = index.get(key);
      if (eq < 0) {
        if (at !== undefined) {
          out.splice(at, 1);
          index.clear();
          out.forEach((e, i) => index.set(e.slice(0, e.indexOf('=')), i));
        }
        continue;
      }
      if (at !== undefined) out[at] = entry;
      else {
        index.set(key, out.length);
        out.push(entry);
      }
    }
  }
  return out;
}

/** The signal StopContainer sends first: the image's StopSignal, else SIGTERM. Returns a name like "SIGQUIT". */
export function resolveStopSignal(image: ImageConfig): string {
  const raw = (image.StopSignal ?? '').trim().toUpperCase();
  if (raw === '') return 'SIGTERM';
  const signals = osConstants.signals as Record<string, number>;
  if (/^\d+$/.test(raw)) {
    const n = Number(raw);
    const name = Object.keys(signals).find((k) => signals[k] === n);
    if (!name) throw invalidArgument(`image StopSignal "${image.StopSignal}" is not a known signal`);
    return name;
  }
  const name = raw.startsWith('SIG') ? raw : `SIG${raw}`;
  if (!(name in signals)) throw invalidArgument(`image StopSignal "${image.StopSignal}" is not a known signal`);
  return name;
}

/** The process for `runc exec --process`: the container's, running `cmd`. */
export function execProcess(base: OciProcess, cmd: readonly string[], tty = false): OciProcess {
  if (cmd.length === 0) throw invalidArgument('exec needs a command');
  const p: OciProcess = { ...base, args: [...cmd], terminal: tty };
  delete p.oomScoreAdj; // already applied to the container; an exec inherits nothing to set
  return p;
}

/** The rlimit clamps already reported: a host without CAP_SYS_RESOURCE clamps every container alike. */
const rlimitClampsLogged = new Set<string>();

/**
 * Rlimits as configured, lowered to what berth may grant when it lacks
 * CAP_SYS_RESOURCE (runc would fail with EPERM). Each clamp is reported
 * once per berthd, not once per container.
 */
export function clampRlimits(rlimits: readonly OciRlimit[], ceilings: Record<string, number> | undefined, warn: Warn): OciRlimit[] {
  return rlimits.map((r) => {
    const ceiling = ceilings?.[r.type];
    if (ceiling === undefined || r.hard <= ceiling) return { ...r };
    const what = `${r.type} hard limit ${r.hard} lowered to ${ceiling}`;
    if (!rlimitClampsLogged.has(what)) {
      rlimitClampsLogged.add(what);
      warn(`${what}: berthd lacks CAP_SYS_RESOURCE and its own hard limit is ${ceiling} (logged once; later containers are clamped the same way)`);
    }
    return { type: r.type, hard: ceiling, soft: Math.min(r.soft, ceiling) };
  });
}

const NET_SYSCTL = /^net\./;
const IPC_SYSCTL = /^(kernel\.(msgmax|msgmnb|msgmni|sem|shmall|shmmax|shmmni|shm_rmid_forced)|fs\.mqueue\.)/;

function namespaceEntry(type: OciNamespace['type'], ref: NamespaceRef): OciNamespace[] {
  return ref.kind === 'host' ? [] : [{ type, path: ref.path }];
}

function buildNamespaces(input: ContainerSpecInput, privileged: boolean): OciNamespace[] {
  const { sandbox, config } = input;
  const nsOpts = config.linux?.securityContext?.namespaceOptions ?? null;
  checkContainerUserns(nsOpts?.usernsOptions ?? null, sandbox);
  // runc joins the user namespace first, so the pod's other namespaces (owned by it) can be joined after.
  const out: OciNamespace[] = sandbox.user ? [{ type: 'user', path: sandbox.user.path }] : [];
  out.push({ type: 'mount' });
  out.push(...namespaceEntry('network', sandbox.network));
  out.push(...namespaceEntry('ipc', sandbox.ipc));
  out.push(...namespaceEntry('uts', sandbox.uts));
  const pidMode = nsOpts ? nsOpts.pid : 'CONTAINER';
  switch (pidMode) {
    case 'NODE':
      break;
    case 'CONTAINER':
      out.push({ type: 'pid' });
      break;
    case 'POD':
      if (!sandbox.pid) {
        throw failedPrecondition(`pod sandbox ${sandbox.sandboxId} has no shared pid namespace, but the container asks for the pod's`);
      }
      out.push(...namespaceEntry('pid', sandbox.pid));
      break;
    case 'TARGET':
      if (!input.targetPidNamespacePath) {
        throw invalidArgument(`pid namespace target "${nsOpts?.targetId ?? ''}" was not resolved to a namespace`);
      }
      out.push({ type: 'pid', path: input.targetPidNamespacePath });
      break;
    default:
      throw invalidArgument(`unknown pid namespace mode "${String(pidMode)}"`);
  }
  // A private cgroup namespace hides the host hierarchy; only sound on pure v2.
  if (input.host.cgroupVersion === 2 && !privileged) out.push({ type: 'cgroup' });
  return out;
}

/** A container's userns_options, when given, must be the pod's (as the kubelet sends them). */
function checkContainerUserns(opts: UserNamespace__Output | null, sandbox: SandboxRuntimeInfo): void {
  if (!opts) return;
  if (opts.mode === 'NODE') {
    if (sandbox.user) throw invalidArgument(`container userns_options mode NODE, but pod sandbox ${sandbox.sandboxId} has its own user namespace`);
    return;
  }
  if (opts.mode !== 'POD') throw invalidArgument(`container userns_options mode ${opts.mode} is not valid (use POD or NODE, as the pod)`);
  if (!sandbox.user) throw invalidArgument(`container userns_options mode POD, but pod sandbox ${sandbox.sandboxId} has no user namespace`);
  const given: UserNamespaceMaps = {
    uids: opts.uids.map((m) => ({ containerId: m.containerId, hostId: m.hostId, length: m.length })),
    gids: opts.gids.map((m) => ({ containerId: m.containerId, hostId: m.hostId, length: m.length })),
  };
  if ((given.uids.length > 0 || given.gids.length > 0) && !sameMaps(given, sandbox.user)) {
    throw invalidArgument(`container userns_options mappings differ from those of pod sandbox ${sandbox.sandboxId}`);
  }
}

function checkSysctls(sysctls: Record<string, string>, sandbox: SandboxRuntimeInfo): void {
  for (const key of Object.keys(sysctls)) {
    if (NET_SYSCTL.test(key) && sandbox.network.kind === 'host') {
      throw invalidArgument(`sysctl "${key}" is not allowed with host networking`);
    }
    if (IPC_SYSCTL.test(key) && sandbox.ipc.kind === 'host') {
      throw invalidArgument(`sysctl "${key}" is not allowed with host IPC`);
    }
  }
}

/**
 * The container's process user: the security context's, else the image's,
 * looked up in the rootfs's /etc/passwd and /etc/group (so it must be mounted).
 */
export function resolveContainerUser(rootfsPath: string, config: ContainerConfig__Output, image: Pick<ImageConfig, 'User'>): OciUser {
  const sc = config.linux?.securityContext ?? null;
  return resolveUser(rootfsPath, {
    username: sc?.runAsUsername || undefined,
    uid: sc?.runAsUser ? sc.runAsUser.value : undefined,
    gid: sc?.runAsGroup ? sc.runAsGroup.value : undefined,
    imageUser: image.User,
    supplementalGroups: sc?.supplementalGroups ?? [],
    policy: sc?.supplementalGroupsPolicy === 'Strict' ? 'Strict' : 'Merge',
  });
}

/** The OCI runtime spec for a CRI container. Throws invalidArgument/failedPrecondition with a reason. */
export function buildContainerSpec(input: ContainerSpecInput): OciSpec {
  const { config, sandboxConfig, image, sandbox, host } = input;
  const warn = input.warn ?? (() => undefined);
  if (!CONTAINER_ID.test(input.containerId)) throw invalidArgument(`container id "${input.containerId}" is not valid`);
  const sc = config.linux?.securityContext ?? null;
  const privileged = sc?.privileged ?? false;
  if (privileged && !sandboxConfig.linux?.securityContext?.privileged) {
    throw invalidArgument('a privileged container is not allowed in a pod sandbox that is not privileged');
  }

  // CDI devices are resolved and applied by the caller (spec/cdi.ts, container/create.ts).

  // Process.
  const args = resolveArgs(config.command, config.args, image);
  const cwd = config.workingDir || image.WorkingDir || '/';
  if (!path.posix.isAbsolute(cwd)) throw invalidArgument(`working directory "${cwd}" must be an absolute path`);
  const hostname = sandbox.hostname || os.hostname();
  const env = mergeEnv(
    [DEFAULT_PATH_ENV, `HOSTNAME=${hostname}`],
    image.Env ?? [],
    config.envs.map(envEntry),
  );
  const user = input.user ?? resolveContainerUser(input.rootfsPath, config, image);
  const caps = resolveCapabilities(sc?.capabilities, privileged, host.capabilities);
  const process: OciProcess = {
    terminal: config.tty,
    user,
    args,
    env,
    cwd,
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: sc?.noNewPrivs ?? false,
  };
  if (input.rlimits?.length) process.rlimits = clampRlimits(input.rlimits, host.rlimitCeilings, warn);
  const apparmor = resolveApparmor(apparmorChoice(sc), privileged, host);
  if (apparmor) process.apparmorProfile = apparmor;
  const criResources = config.linux?.resources ?? null;
  if (criResources) {
    process.oomScoreAdj = clampOomScoreAdj(int64(criResources.oomScoreAdj, 'oom_score_adj'), host.minOomScoreAdj, warn);
  }

  // Mounts.
  const { mounts, rootfsPropagation } = buildMounts(config.mounts, {
    privileged,
    readonlyRootfs: sc?.readonlyRootfs ?? false,
    pod: {
      hostnamePath: sandbox.hostnamePath,
      hostsPath: sandbox.hostsPath,
      resolvConfPath: sandbox.resolvConfPath,
      shmPath: sandbox.shmPath,
    },
    recursiveReadOnlySupported: input.recursiveReadOnlyMounts ?? false,
    hostSysfs: sandbox.user !== undefined && sandbox.network.kind === 'host',
    mountInfo: input.mountInfo,
  });

  // Devices and resources.
  const criDevices = buildDevices(config.devices);
  let devices = criDevices.devices;
  const resources: OciLinuxResources = toOciResources(criResources, host, warn);
  if (privileged) {
    const fromHost = (input.hostDevices ?? hostDevices)();
    const taken = new Set(devices.map((d) => d.path));
    devices = [...devices, ...fromHost.filter((d) => !taken.has(d.path))];
    resources.devices = [{ allow: true, access: 'rwm' }];
  } else {
    resources.devices = [...defaultDeviceRules(), ...criDevices.rules];
  }
  if (sandbox.pidsLimit !== undefined && sandbox.pidsLimit > 0) resources.pids = { limit: sandbox.pidsLimit };

  const sysctl = { ...(sandboxConfig.linux?.sysctls ?? {}) };
  checkSysctls(sysctl, sandbox);

  const namespaces = buildNamespaces(input, privileged);
  const seccomp = resolveSeccomp(seccompChoice(sc), privileged, caps);

  const maskedPaths = privileged ? [] : sc && sc.maskedPaths.length > 0 ? [...sc.maskedPaths] : [...DEFAULT_MASKED_PATHS];
  const readonlyPaths = privileged
    ? []
    : sc && sc.readonlyPaths.length > 0
      ? [...sc.readonlyPaths]
      : [...DEFAULT_READONLY_PATHS];

  const cgroupParent = sandbox.cgroupParent || '/berth';
  if (!sandbox.cgroupsPath && !cgroupParent.startsWith('/')) throw invalidArgument(`cgroup parent "${cgroupParent}" must be an absolute cgroupfs path`);

  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process,
    root: { path: input.rootfsPath, readonly: sc?.readonlyRootfs ?? false },
    mounts,
    annotations: {
      [ANNOTATIONS.containerType]: 'container',
      [ANNOTATIONS.sandboxId]: sandbox.sandboxId,
      [ANNOTATIONS.sandboxName]: sandboxConfig.metadata?.name ?? '',
      [ANNOTATIONS.sandboxNamespace]: sandboxConfig.metadata?.namespace ?? '',
      [ANNOTATIONS.sandboxUid]: sandboxConfig.metadata?.uid ?? '',
      [ANNOTATIONS.containerName]: config.metadata?.name ?? '',
      [ANNOTATIONS.imageName]: input.imageName,
    },
    linux: {
      namespaces,
      devices,
      cgroupsPath: sandbox.cgroupsPath ?? path.posix.join(cgroupParent, input.containerId),
      resources,
      maskedPaths,
      readonlyPaths,
    },
  };
  // Joining the pod's UTS namespace: setting the name again is harmless and
  // makes sure the pinned namespace carries it. runc refuses it for the host's.
  if (sandbox.uts.kind === 'pinned' && sandbox.hostname) spec.hostname = sandbox.hostname;
  if (sandbox.user) {
    // runc 1.1 wants the maps also when it joins an existing user namespace.
    spec.linux.uidMappings = toOciMappings(sandbox.user.uids);
    spec.linux.gidMappings = toOciMappings(sandbox.user.gids);
  }
  if (Object.keys(sysctl).length > 0) spec.linux.sysctl = sysctl;
  if (seccomp) spec.linux.seccomp = seccomp;
  if (rootfsPropagation) spec.linux.rootfsPropagation = rootfsPropagation;
  return spec;
}
