// CreateContainer: reserve the name, write the record (phase creating), then
// rootfs (snapshot, mount) beside the spec and log directory, then bundle and
// shim (`runtime create`).
// Any failure rolls everything back through teardown and frees the name.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alreadyExists, errorMessage, failedPrecondition, invalidArgument, notFound } from '../errors';
import type { ContainerConfig__Output } from '../gen/runtime/v1/ContainerConfig';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { ImageRecord } from '../image/store';
import { ensureTraversable } from '../runtime/idmap';
import { resolveContainerUser, resolveStopSignal } from '../runtime/spec/builder';
import { loadCdiDevices, requestedCdiDevices, resolveCdiDevices, type CdiDevice } from '../runtime/spec/cdi';
import { configStopSignal } from '../runtime/spec/stop_signal';
import type { SandboxRecord } from '../sandbox/record';
import { crashPoint } from '../util/crashpoint';
import { makeDirs } from '../util/dirs';
import { settleAll } from '../util/settle';
import { nowNs } from '../util/time';
import type { PhaseTrace } from '../metrics/phase_trace';
import type { ContainerDeps } from './deps';
import { idmapBindMounts, idmapDirOf, mountIdmappedRootfs, type PodUserns } from './idmap_mounts';
import { containerNameKey, type ContainerRecord } from './record';
import { buildSpec, imageConfigOf, podUserns } from './spec';
import { initialContainerState, markCreated } from './state';
import type { ContainerTeardown } from './teardown';
import { imageVolumeIds } from './volumes';

export class ContainerCreator {
  constructor(
    private readonly deps: ContainerDeps,
    private readonly teardown: ContainerTeardown,
  ) {}

  /** `config` has a name and an image (checked at the CRI edge). */
  async create(
    podSandboxId: string,
    config: ContainerConfig__Output,
    sandboxConfig: PodSandboxConfig__Output | null,
    trace: PhaseTrace,
  ): Promise<string> {
    const { store, logger } = this.deps;
    const pod = this.deps.pods.get(podSandboxId);
    if (pod.state !== 'ready') {
      throw failedPrecondition(`pod sandbox ${pod.id} is not ready (stopped); cannot create containers in it`);
    }
    const name = config.metadata?.name ?? '';
    const attempt = config.metadata?.attempt ?? 0;
    const imageName = config.image?.image ?? '';
    const image = this.deps.images.lookup(imageName);
    if (!image) throw notFound(`image "${imageName}" not found; pull it first`);
    const volumeImageIds = imageVolumeIds(this.deps, config.mounts ?? []);
    const cdiDevices = this.cdiDevices(config);
    const handler = this.deps.handlers.get(pod.runtimeHandler);

    const id = randomBytes(32).toString('hex');
    // Reserved before the first await, so concurrent creates of one name conflict.
    const key = containerNameKey(pod.id, name, attempt);
    const holder = store.reserveName(key, id);
    if (holder) {
      throw alreadyExists(`a container named "${name}" (attempt ${attempt}) already exists in pod ${pod.id}: ${holder}; remove it first`);
    }
    const stateDir = path.join(this.deps.config.state, 'containers', id);
    const rec: ContainerRecord = {
      id,
      podSandboxId: pod.id,
      ...initialContainerState(),
      metadata: { name, attempt },
      config,
      imageName,
      imageId: image.id,
      imageRefName: image.repoDigests[0] ?? image.repoTags[0] ?? image.id,
      ...(volumeImageIds.length > 0 ? { imageVolumeIds: volumeImageIds } : {}),
      runtimeHandler: handler.name,
      createdAt: nowNs(),
      startedAt: '0',
      finishedAt: '0',
      exitCode: 0,
      reason: '',
      message: '',
      logPath: logPathIn(pod.config.logDirectory, config.logPath),
      stateDir,
      bundleDir: path.join(stateDir, 'bundle'),
      rootfsDir: path.join(stateDir, 'bundle', 'rootfs'),
      // Unix socket paths are limited to 107 bytes: keep the shim's dir short
      // (128 bits of the id are as unique as the whole of it here).
      shimDir: path.join(this.deps.config.state, 'shims', id.slice(0, 32)),
      snapshotKey: `container-${id}`,
      // The request's stop signal, else the image's, else SIGTERM.
      stopSignal: configStopSignal(config.stopSignal) ?? resolveStopSignal({ StopSignal: image.config.stopSignal }),
      cgroupsPath: '',
      pid: 0,
      resources: config.linux?.resources ?? null,
    };
    // From here until the shim reported, so runc's cgroup attach finds it warm.
    const releaseAttachWarmth = this.deps.runtime.warmCgroupAttach();
    try {
      await trace.time('record', () => store.create(rec));
      crashPoint('container-create:after-record');
      const made = await this.materialise(rec, image, pod, sandboxConfig ?? pod.config, cdiDevices, trace);
      await trace.time('record_created', () => store.update(id, (r) => {
        Object.assign(r, made);
        markCreated(r);
      }));
      logger.info('container created', { container: id, pod: pod.id, name, image: rec.imageName });
      this.deps.events.publish('CONTAINER_CREATED_EVENT', rec);
      return id;
    } catch (err) {
      logger.warn('container create failed; rolling back', { container: id, pod: pod.id, error: errorMessage(err) });
      await this.teardown.run(rec).catch((e: unknown) =>
        logger.error('rollback of a failed create left something behind', { container: id, error: errorMessage(e) }),
      );
      store.releaseName(key, id);
      throw err;
    } finally {
      releaseAttachWarmth();
    }
  }

  /** The CDI devices the config asks for, from the spec files as they are now; INVALID_ARGUMENT naming unknown ones. */
  private cdiDevices(config: ContainerConfig__Output): CdiDevice[] {
    const names = requestedCdiDevices(config);
    if (names.length === 0) return [];
    const warn = (m: string): void => void this.deps.logger.warn(m);
    return resolveCdiDevices(names, loadCdiDevices(this.deps.config.cdi.spec_dirs, warn));
  }

  /**
   * The rootfs (snapshot, mount, the process user from its /etc/passwd)
   * beside the spec and the log dir, which do not need it; then the bundle
   * and the shim (runtime create). Returns what the record learns.
   */
  private async materialise(
    rec: ContainerRecord,
    image: ImageRecord,
    pod: SandboxRecord,
    sandboxConfig: PodSandboxConfig__Output,
    cdiDevices: readonly CdiDevice[],
    trace: PhaseTrace,
  ): Promise<Pick<ContainerRecord, 'cgroupsPath' | 'user' | 'pid'>> {
    const { runtime } = this.deps;
    const handler = this.deps.handlers.get(rec.runtimeHandler);
    fs.mkdirSync(rec.bundleDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(rec.rootfsDir, { recursive: true, mode: 0o755 });
    const top = image.chainIds[image.chainIds.length - 1];
    if (!top) throw failedPrecondition(`image ${image.id} has no layers`);
    const userns = podUserns(pod);
    const idmapDir = idmapDirOf(rec.stateDir);
    const imageConfig = imageConfigOf(image);
    const rootfsMounted = this.mountRootfs(rec, top, userns, idmapDir, trace);
    const [user, { spec, cgroupsPath }] = await settleAll([
      rootfsMounted.then(() => resolveContainerUser(rec.rootfsDir, rec.config, imageConfig)),
      buildSpec(this.deps, rec, image, imageConfig, pod, sandboxConfig, cdiDevices, rootfsMounted, trace),
      rec.logPath ? trace.time('log_dir', () => makeDirs(path.dirname(rec.logPath), 0o755)) : Promise.resolve(),
    ]);
    spec.process.user = user;
    const copies = await idmapBindMounts(spec, this.deps.idmap, idmapDir, userns, handler.features?.idmapMounts ?? false);
    await trace.time('bundle', () => runtime.writeBundle(rec.bundleDir, spec));
    crashPoint('container-create:after-bundle');

    const pid = await trace.time('shim_create', () => runtime.create(rec, {
      bundle: rec.bundleDir,
      logPath: rec.logPath || undefined,
      stdin: rec.config.stdin,
      stdinOnce: rec.config.stdin && rec.config.stdinOnce,
      tty: rec.config.tty,
      cgroupPaths: cgroupsPath ? [cgroupsPath] : [],
    }));
    crashPoint('container-create:after-shim');
    // The container has its own copies of its mounts now.
    await this.deps.idmap.umount(copies);
    return {
      cgroupsPath,
      pid,
      user: { uid: spec.process.user.uid, gid: spec.process.user.gid, additionalGids: spec.process.user.additionalGids ?? [] },
    };
  }

  /** The writable layer, prepared and mounted on the bundle's rootfs (idmapped for a pod user namespace). */
  private async mountRootfs(rec: ContainerRecord, top: string, userns: PodUserns | undefined, idmapDir: string, trace: PhaseTrace): Promise<void> {
    const { snapshotter } = this.deps;
    await trace.time('snapshot_prepare', () => snapshotter.prepare(rec.snapshotKey, top));
    crashPoint('container-create:after-snapshot');
    if (userns) {
      // runc sets the mounts up as the pod's root, which must be able to reach them.
      await ensureTraversable(rec.rootfsDir, this.deps.config.state);
      fs.mkdirSync(idmapDir, { mode: 0o711 });
      await mountIdmappedRootfs(snapshotter, this.deps.idmap, rec.snapshotKey, rec.rootfsDir, idmapDir, userns);
    } else {
      await trace.time('rootfs_mount', () => snapshotter.mount(rec.snapshotKey, rec.rootfsDir));
    }
    crashPoint('container-create:after-mount');
  }
}

/**
 * The container's log file: log_path under the pod's log_directory. The CRI
 * edge refuses paths that leave it; this checks again where the path is made,
 * since a path escaping the directory would be created by root.
 */
function logPathIn(logDirectory: string, logPath: string): string {
  if (!logDirectory || !logPath) return '';
  const full = path.join(logDirectory, logPath);
  const rel = path.relative(logDirectory, full);
  if (path.isAbsolute(logPath) || rel === '' || rel === '..' || rel.startsWith('../') || path.isAbsolute(rel)) {
    throw invalidArgument(`log_path ${JSON.stringify(logPath)} leaves the pod's log_directory`);
  }
  return full;
}
