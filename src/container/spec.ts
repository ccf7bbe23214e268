// A container's OCI spec as CreateContainer builds it: volumes, the spec
// itself with the pod's namespaces and files, CDI devices, and the cgroup.
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import { failedPrecondition } from '../errors';
import type { ImageRecord } from '../image/store';
import type { PhaseTrace } from '../metrics/phase_trace';
import { supportsRecursiveReadOnly } from '../runtime/handlers';
import { buildContainerSpec, type ImageConfig, type NamespaceRef, type SandboxRuntimeInfo } from '../runtime/spec/builder';
import { applyCdiDevices, type CdiDevice } from '../runtime/spec/cdi';
import type { OciSpec } from '../runtime/spec/oci_types';
import type { SandboxRecord } from '../sandbox/record';
import type { ContainerDeps } from './deps';
import type { PodUserns } from './idmap_mounts';
import type { ContainerRecord } from './record';
import { containerMounts } from './volumes';

/** The image config as the spec builder reads it. */
export function imageConfigOf(image: ImageRecord): ImageConfig {
  return {
    Env: image.config.env,
    Entrypoint: image.config.entrypoint,
    Cmd: image.config.cmd,
    WorkingDir: image.config.workingDir,
    User: image.config.user,
    StopSignal: image.config.stopSignal,
  };
}

/**
 * Volumes (after the rootfs when the image declares VOLUMEs) and the OCI
 * spec, and the container's cgroup. The process user
 * is left to the caller, which reads it from the mounted rootfs: until
 * then it is root, and the spec is not written anywhere.
 */
export async function buildSpec(
  deps: ContainerDeps,
  rec: ContainerRecord,
  image: ImageRecord,
  imageConfig: ImageConfig,
  pod: SandboxRecord,
  sandboxConfig: PodSandboxConfig__Output,
  cdiDevices: readonly CdiDevice[],
  rootfsMounted: Promise<void>,
  trace: PhaseTrace,
): Promise<{ spec: OciSpec; cgroupsPath: string }> {
  const handler = deps.handlers.get(rec.runtimeHandler);
  const mounts = await trace.time('mounts', async () => {
    // The image's own VOLUMEs are copied from the rootfs: those wait for it.
    if (image.config.volumes.length > 0) await rootfsMounted;
    return containerMounts(deps, rec, image);
  });
  const containerCgroup = deps.pods.cgroupDriver?.container(pod.cgroup, rec.id);
  const warnings: string[] = [];
  const spec = await trace.time('spec', () => buildContainerSpec({
    containerId: rec.id,
    config: { ...rec.config, mounts },
    sandboxConfig,
    image: imageConfig,
    imageName: rec.imageName,
    rootfsPath: rec.rootfsDir,
    user: { uid: 0, gid: 0 },
    sandbox: { ...sandboxInfo(pod), cgroupsPath: containerCgroup?.specPath },
    host: deps.host,
    recursiveReadOnlyMounts: supportsRecursiveReadOnly(handler),
    rlimits: Object.entries(deps.config.runtime.default_rlimits).map(([type, l]) => ({ type, soft: l.soft, hard: l.hard })),
    warn: (msg: string) => warnings.push(msg),
  }));
  for (const w of warnings) deps.logger.info(w, { container: rec.id });
  applyCdiDevices(spec, cdiDevices);
  // Where its usage is read and the shim watches for OOM kills: the cgroup's path in the hierarchies.
  return { spec, cgroupsPath: containerCgroup?.path ?? spec.linux.cgroupsPath ?? '' };
}

/** The pod's user namespace (pinned file and maps), when it has one. */
export function podUserns(pod: SandboxRecord): PodUserns | undefined {
  if (!pod.userns) return undefined;
  if (!pod.nsPaths.user) throw failedPrecondition(`pod sandbox ${pod.id} has no pinned user namespace; recreate the pod`);
  return { path: pod.nsPaths.user, ...pod.userns };
}

/** The pod's namespaces, files and cgroup as the spec builder needs them. */
function sandboxInfo(pod: SandboxRecord): SandboxRuntimeInfo {
  const HOST: NamespaceRef = { kind: 'host' };
  const pinned = (what: string, p: string | undefined): NamespaceRef => {
    if (!p) throw failedPrecondition(`pod sandbox ${pod.id} has no pinned ${what} namespace; recreate the pod`);
    return { kind: 'pinned', path: p };
  };
  const hostNet = pod.namespaceModes.network === 'NODE';
  const pid = pod.namespaceModes.pid;
  return {
    sandboxId: pod.id,
    hostname: pod.hostname,
    network: hostNet ? HOST : pinned('network', pod.nsPaths.net),
    ipc: pod.namespaceModes.ipc === 'NODE' ? HOST : pinned('ipc', pod.nsPaths.ipc),
    uts: hostNet ? HOST : pinned('uts', pod.nsPaths.uts),
    pid: pid === 'NODE' ? HOST : pid === 'POD' ? pinned('pid', pod.nsPaths.pid) : undefined,
    user: podUserns(pod),
    hostnamePath: pod.hostnameFile,
    hostsPath: pod.hostsFile,
    resolvConfPath: pod.resolvConfFile,
    shmPath: pod.shmPath ?? '/dev/shm',
    cgroupParent: pod.cgroup.path,
  };
}
