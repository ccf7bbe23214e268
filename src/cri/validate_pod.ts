// The checks of the pod RPCs at the CRI edge: a RunPodSandbox request becomes
// the PodSpec the sandbox service runs, and Stop/Remove need a pod id.
import * as path from 'node:path';
import type { PodCgroupName } from '../cgroups/pod_driver';
import { invalidArgument } from '../errors';
import type { IDMapping__Output } from '../gen/runtime/v1/IDMapping';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { UserNamespace__Output } from '../gen/runtime/v1/UserNamespace';
import type { IdMapping, UserNamespaceMaps } from '../runtime/idmap';
import { resolvConfFor, validateHostname } from '../sandbox/pod_files';
import type { NamespaceModeName } from '../sandbox/record';
import type { PodSpec } from '../sandbox/run';
import { validateSysctls } from '../sandbox/sysctls';
import { pseudoFsProblem } from '../util/dirs';

/**
 * A pod uid becomes a path component (the default pod cgroup is
 * `<parent>/pod<uid>`), so it must not hold a separator or be `.`/`..`:
 * letters, digits, '-', '_' and '.', starting with a letter or digit. UUIDs
 * and the hashes the kubelet gives static pods fit. Its length is bounded
 * with the other request fields (./bounds.ts).
 */
const POD_UID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Name and namespace go into logs, CNI arguments and the name key: no control characters, no separators. */
const METADATA_NAME = /^[^\u0000-\u001f\u007f/;=,]+$/;

function validateMetadata(md: { name: string; namespace: string; uid: string }): void {
  if (!POD_UID.test(md.uid)) {
    throw invalidArgument(
      'RunPodSandbox: metadata.uid may hold only letters, digits, "-", "_" and ".", and must start with a letter or digit',
    );
  }
  for (const field of ['name', 'namespace'] as const) {
    if (!METADATA_NAME.test(md[field])) {
      throw invalidArgument(`RunPodSandbox: metadata.${field} must not contain control characters, "/", ";", "=" or ","`);
    }
  }
}

/** log_directory: absolute, and not in a pseudo-filesystem (mkdir there fails, or never ends). */
function validateLogDirectory(dir: string): void {
  if (!path.isAbsolute(dir)) throw invalidArgument(`log_directory "${dir}" must be an absolute path`);
  const problem = pseudoFsProblem(dir);
  if (problem) throw invalidArgument(`log_directory "${dir}" cannot hold logs: ${problem}`);
}

function modeOf(v: string | undefined, field: string, allowed: NamespaceModeName[]): NamespaceModeName {
  const mode = (v ?? 'POD') as NamespaceModeName;
  if (!allowed.includes(mode)) {
    throw invalidArgument(`namespace_options.${field} = ${mode} is not valid for a pod sandbox (use ${allowed.join(' or ')})`);
  }
  return mode;
}

function checkMaps(kind: 'uids' | 'gids', maps: readonly IDMapping__Output[]): IdMapping[] {
  // The kubelet sends one range; runc and the idmapped mounts berth makes take one.
  if (maps.length !== 1) {
    throw invalidArgument(`namespace_options.userns_options.${kind}: exactly one mapping is required, got ${maps.length}`);
  }
  const m = maps[0];
  if (m.length === 0) throw invalidArgument(`namespace_options.userns_options.${kind}: the mapping has length 0`);
  if (m.containerId !== 0) {
    throw invalidArgument(`namespace_options.userns_options.${kind}: container id 0 must be mapped (the mapping starts at ${m.containerId})`);
  }
  if (m.hostId + m.length > 2 ** 32 - 1) {
    throw invalidArgument(`namespace_options.userns_options.${kind}: the mapping ends past the last host id`);
  }
  return [{ containerId: m.containerId, hostId: m.hostId, length: m.length }];
}

/** The pod's user namespace: its maps with mode POD, undefined with NODE (or none given). */
export function usernsOf(opts: UserNamespace__Output | null | undefined): UserNamespaceMaps | undefined {
  if (!opts || opts.mode === 'NODE') {
    if (opts && (opts.uids.length > 0 || opts.gids.length > 0)) {
      throw invalidArgument('namespace_options.userns_options: mode NODE takes no uid or gid mappings');
    }
    return undefined;
  }
  if (opts.mode !== 'POD') {
    throw invalidArgument(`namespace_options.userns_options.mode = ${opts.mode} is not valid (use POD or NODE)`);
  }
  return { uids: checkMaps('uids', opts.uids), gids: checkMaps('gids', opts.gids) };
}

/** Checks a RunPodSandbox request; INVALID_ARGUMENT when it is not one berth runs. */
export function podSpecOf(
  config: PodSandboxConfig__Output | null,
  runtimeHandler: string,
  /** The cgroup driver's naming: checks the parent (or makes the default one) and gives the pod's cgroup. */
  cgroupOf: (parent: string, uid: string) => PodCgroupName,
): PodSpec {
  if (!config) throw invalidArgument('RunPodSandbox: config is required');
  const md = config.metadata;
  if (!md || !md.name || !md.namespace || !md.uid) {
    throw invalidArgument('RunPodSandbox: metadata.name, metadata.namespace and metadata.uid are required');
  }
  validateMetadata(md);
  const linux = config.linux;
  const nsOpts = linux?.securityContext?.namespaceOptions;
  const namespaceModes = {
    network: modeOf(nsOpts?.network, 'network', ['POD', 'NODE']),
    pid: modeOf(nsOpts?.pid, 'pid', ['POD', 'CONTAINER', 'NODE']),
    ipc: modeOf(nsOpts?.ipc, 'ipc', ['POD', 'NODE']),
  };
  const userns = usernsOf(nsOpts?.usernsOptions);
  // Joining the host's IPC or PID namespace needs privileges over it that the pod's user namespace does not have.
  if (userns && (namespaceModes.ipc === 'NODE' || namespaceModes.pid === 'NODE')) {
    throw invalidArgument('a pod in a user namespace cannot use the host IPC or PID namespace');
  }
  const podNet = namespaceModes.network === 'POD';
  const sysctls = linux?.sysctls ?? {};
  validateSysctls(sysctls, podNet, namespaceModes.ipc === 'POD');
  // With the host network the pod shares the host's UTS namespace and name, so a
  // hostname it asks for is ignored, as containerd and CRI-O ignore it (the
  // kubelet sends none; crictl users' pod files often carry one).
  const hostname = podNet && config.hostname ? config.hostname : undefined;
  if (hostname) validateHostname(hostname);
  const cgroup = cgroupOf(linux?.cgroupParent ?? '', md.uid);
  const resolvConf = resolvConfFor(config.dnsConfig);
  if (config.logDirectory) validateLogDirectory(config.logDirectory);
  return {
    config,
    metadata: { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt },
    namespaceModes,
    userns,
    sysctls,
    hostname,
    cgroupPath: cgroup.path,
    ...(cgroup.slice ? { cgroupSlice: cgroup.slice } : {}),
    resolvConf,
    runtimeHandler,
  };
}

/** StopPodSandbox and RemovePodSandbox name the pod they act on. */
export function requirePodSandboxId(rpc: string, podSandboxId: string): string {
  if (!podSandboxId) throw invalidArgument(`${rpc}: pod_sandbox_id is required`);
  return podSandboxId;
}
