// The checks of the pod RPCs at the CRI edge: a RunPodSandbox request becomes
// the PodSpec the sandbox service runs, and Stop/Remove need a pod id.
import * as os from 'node:os';
import * as path from 'node:path';
import { validateCgroupPath } from '../cgroups/cgroups';
import { invalidArgument, unimplemented } from '../errors';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
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

/** Checks a RunPodSandbox request; INVALID_ARGUMENT (UNIMPLEMENTED for user namespaces) when it is not one berth runs. */
export function podSpecOf(config: PodSandboxConfig__Output | null, runtimeHandler: string, defaultCgroupParent: string): PodSpec {
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
  if (nsOpts?.usernsOptions && nsOpts.usernsOptions.mode === 'POD') {
    throw unimplemented('user namespaces for pods (namespace_options.userns_options.mode = POD) are not supported');
  }
  const podNet = namespaceModes.network === 'POD';
  const sysctls = linux?.sysctls ?? {};
  validateSysctls(sysctls, podNet, namespaceModes.ipc === 'POD');
  // With the host network the pod shares the host's UTS namespace and name:
  // a name of its own cannot be given (the kubelet sends none, or the node's).
  if (!podNet && config.hostname && config.hostname !== os.hostname()) {
    throw invalidArgument(
      `hostname "${config.hostname}": a pod on the host network has the node's hostname (${os.hostname()}) and cannot have its own`,
    );
  }
  const hostname = podNet && config.hostname ? config.hostname : undefined;
  if (hostname) validateHostname(hostname);
  const cgroupPath = validateCgroupPath(linux?.cgroupParent || `${defaultCgroupParent}/pod${md.uid}`);
  const resolvConf = resolvConfFor(config.dnsConfig);
  if (config.logDirectory) validateLogDirectory(config.logDirectory);
  return {
    config,
    metadata: { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt },
    namespaceModes,
    sysctls,
    hostname,
    cgroupPath,
    resolvConf,
    runtimeHandler,
  };
}

/** StopPodSandbox and RemovePodSandbox name the pod they act on. */
export function requirePodSandboxId(rpc: string, podSandboxId: string): string {
  if (!podSandboxId) throw invalidArgument(`${rpc}: pod_sandbox_id is required`);
  return podSandboxId;
}
