// Containers: create (snapshot + bundle + shim), start, stop, remove, status,
// exec and updates. The shim owns the running container; this service owns
// the records and drives the OCI runtime for everything that is not
// per-container (start, kill, delete, exec, update). Every step of a create is
// undone when a later one fails, and a create or remove that a killed berthd
// left half-done is finished or rolled back at start.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BerthConfig } from '../config/config';
import {
  alreadyExists,
  BerthError,
  errorMessage,
  failedPrecondition,
  internal,
  invalidArgument,
  notFound,
} from '../errors';
import type { ContainerConfig__Output } from '../gen/runtime/v1/ContainerConfig';
import type { ContainerFilter__Output } from '../gen/runtime/v1/ContainerFilter';
import type { LinuxContainerResources__Output } from '../gen/runtime/v1/LinuxContainerResources';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { Logger } from '../log/logger';
import type { ImageService } from '../image/service';
import type { ImageRecord } from '../image/store';
import { supportsRecursiveReadOnly, type RuntimeHandlerRegistry } from '../runtime/handlers';
import { OciRuntime, type ExecResult } from '../runtime/oci_runtime';
import {
  buildContainerSpec,
  execProcess,
  resolveStopSignal,
  type NamespaceRef,
  type SandboxRuntimeInfo,
} from '../runtime/spec/builder';
import type { HostInfo } from '../runtime/spec/host_info';
import type { OciProcess } from '../runtime/spec/oci_types';
import { toOciResources } from '../runtime/spec/resources';
import type { Snapshotter } from '../snapshotter/snapshotter';
import type { SandboxService } from '../sandbox/service';
import type { SandboxRecord } from '../sandbox/record';
import { ShimClient, stopLeftoverShim, type ShimExit } from '../shim/shim_client';
import { DurableJsonStore } from '../store/durable_json';
import { detectCgroupLayout, type CgroupLayout } from '../cgroups/cgroups';
import { diskUsage } from '../util/disk_usage';
import { crashPoint } from '../util/crashpoint';
import { UsageSampler, type UsageSample } from './stats';
import { ContainerEventBus } from './events';
import { KeyedMutex } from '../util/keyed_mutex';
import { containerNameKey, type ContainerRecord } from './record';
import { nowNs } from '../util/time';

export interface ContainerServiceOptions {
  config: BerthConfig;
  logger: Logger;
  handlers: RuntimeHandlerRegistry;
  images: ImageService;
  snapshotter: Snapshotter;
  sandboxes: SandboxService;
  host: HostInfo;
}


function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function signalNumber(sig: string): string {
  // runc accepts names (TERM, SIGTERM) and numbers; normalise RTMIN+n and the like by passing through.
  return sig.trim() || 'SIGTERM';
}

export class ContainerService {
  private readonly store: DurableJsonStore<ContainerRecord>;
  /** Lifecycle events, for GetContainerEvents. */
  readonly events = new ContainerEventBus();
  private readonly names = new Map<string, string>();
  /** Serialises start/stop/remove/update of the same container. */
  private readonly lock = new KeyedMutex();
  private readonly shims = new Map<string, ShimClient>();
  private readonly watchers = new Map<string, Promise<void>>();
  private readonly config: BerthConfig;
  private readonly logger: Logger;

  constructor(private readonly opts: ContainerServiceOptions) {
    this.config = opts.config;
    this.logger = opts.logger.child({ component: 'containers' });
    this.store = new DurableJsonStore<ContainerRecord>(path.join(opts.config.root, 'containers'), 'container', this.logger);
  }

  // ---- lookup -------------------------------------------------------------

  find(idOrPrefix: string): ContainerRecord | undefined {
    const exact = this.store.get(idOrPrefix);
    if (exact) return exact;
    if (!idOrPrefix) return undefined;
    const matches = this.store.list().filter((c) => c.id.startsWith(idOrPrefix));
    if (matches.length > 1) throw invalidArgument(`container id prefix "${idOrPrefix}" is ambiguous`);
    return matches[0];
  }

  get(idOrPrefix: string): ContainerRecord {
    if (!idOrPrefix) throw invalidArgument('container id is required');
    const rec = this.find(idOrPrefix);
    if (!rec || rec.phase === 'creating') throw notFound(`container "${idOrPrefix}" not found`);
    return rec;
  }

  list(filter?: ContainerFilter__Output | null): ContainerRecord[] {
    let out = this.store.list().filter((c) => c.phase !== 'creating');
    if (filter) {
      if (filter.id) out = out.filter((c) => c.id.startsWith(filter.id));
      if (filter.podSandboxId) out = out.filter((c) => c.podSandboxId.startsWith(filter.podSandboxId));
      if (filter.state) out = out.filter((c) => c.state === filter.state?.state);
      const sel = filter.labelSelector ?? {};
      if (Object.keys(sel).length) out = out.filter((c) => labelsMatch(c.config.labels ?? {}, sel));
    }
    return out.sort((a, b) => (BigInt(a.createdAt) < BigInt(b.createdAt) ? -1 : 1));
  }

  ofPod(podId: string): ContainerRecord[] {
    return this.store.list().filter((c) => c.podSandboxId === podId);
  }

  // ---- create -------------------------------------------------------------

  async create(
    podSandboxId: string,
    config: ContainerConfig__Output | null,
    sandboxConfig: PodSandboxConfig__Output | null,
  ): Promise<string> {
    if (!podSandboxId) throw invalidArgument('pod_sandbox_id is required');
    if (!config) throw invalidArgument('config is required');
    if (!config.metadata?.name) throw invalidArgument('config.metadata.name is required');
    if (!config.image?.image) throw invalidArgument('config.image.image is required');
    const pod = this.opts.sandboxes.get(podSandboxId);
    if (pod.state !== 'ready') {
      throw failedPrecondition(`pod sandbox ${pod.id} is not ready (stopped); cannot create containers in it`);
    }
    const name = config.metadata.name;
    const attempt = config.metadata.attempt ?? 0;
    const key = containerNameKey(pod.id, name, attempt);
    const existing = this.names.get(key);
    if (existing) {
      throw alreadyExists(
        `a container named "${name}" (attempt ${attempt}) already exists in pod ${pod.id}: ${existing}; remove it first`,
      );
    }
    const image = this.opts.images.lookup(config.image.image);
    if (!image) throw notFound(`image "${config.image.image}" not found; pull it first`);
    const handler = this.opts.handlers.get(pod.runtimeHandler);

    const id = randomBytes(32).toString('hex');
    // Reserve the name before the first await so concurrent creates of the same name conflict.
    this.names.set(key, id);
    const stateDir = path.join(this.config.state, 'containers', id);
    const rec: ContainerRecord = {
      id,
      podSandboxId: pod.id,
      phase: 'creating',
      state: 'CONTAINER_CREATED',
      metadata: { name, attempt },
      config,
      imageName: config.image.image,
      imageId: image.id,
      imageRefName: image.repoDigests[0] ?? image.repoTags[0] ?? image.id,
      runtimeHandler: handler.name,
      createdAt: nowNs(),
      startedAt: '0',
      finishedAt: '0',
      exitCode: 0,
      reason: '',
      message: '',
      logPath: pod.config.logDirectory && config.logPath ? path.join(pod.config.logDirectory, config.logPath) : '',
      stateDir,
      bundleDir: path.join(stateDir, 'bundle'),
      rootfsDir: path.join(stateDir, 'bundle', 'rootfs'),
      // Unix socket paths are limited to 107 bytes: keep the shim's dir short
      // (128 bits of the id are as unique as the whole of it here).
      shimDir: path.join(this.config.state, 'shims', id.slice(0, 32)),
      snapshotKey: `container-${id}`,
      stopSignal: resolveStopSignal({ StopSignal: image.config.stopSignal }),
      cgroupsPath: '',
      pid: 0,
      resources: config.linux?.resources ?? null,
    };
    try {
      await this.store.save(rec);
      crashPoint('container-create:after-record');
      await this.materialise(rec, image, pod, sandboxConfig ?? pod.config, handler.name);
      rec.phase = 'ready';
      await this.store.save(rec);
      this.logger.info('container created', { container: id, pod: pod.id, name, image: rec.imageName });
      this.events.publish('CONTAINER_CREATED_EVENT', rec);
      return id;
    } catch (err) {
      this.logger.warn('container create failed; rolling back', { container: id, pod: pod.id, error: errorMessage(err) });
      await this.teardown(rec).catch((e: unknown) =>
        this.logger.error('rollback of a failed create left something behind', { container: id, error: errorMessage(e) }),
      );
      this.names.delete(key);
      throw err;
    }
  }

  /** Snapshot, rootfs mount, bundle, log dir, shim (runtime create). */
  private async materialise(
    rec: ContainerRecord,
    image: ImageRecord,
    pod: SandboxRecord,
    sandboxConfig: PodSandboxConfig__Output,
    handlerName: string,
  ): Promise<void> {
    const handler = this.opts.handlers.get(handlerName);
    fs.mkdirSync(rec.bundleDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(rec.rootfsDir, { recursive: true, mode: 0o755 });
    const top = image.chainIds[image.chainIds.length - 1];
    if (!top) throw failedPrecondition(`image ${image.id} has no layers`);
    await this.opts.snapshotter.prepare(rec.snapshotKey, top);
    crashPoint('container-create:after-snapshot');
    await this.opts.snapshotter.mount(rec.snapshotKey, rec.rootfsDir);
    crashPoint('container-create:after-mount');

    const warnings: string[] = [];
    const spec = buildContainerSpec({
      containerId: rec.id,
      config: rec.config,
      sandboxConfig,
      image: {
        Env: image.config.env,
        Entrypoint: image.config.entrypoint,
        Cmd: image.config.cmd,
        WorkingDir: image.config.workingDir,
        User: image.config.user,
        StopSignal: image.config.stopSignal,
      },
      imageName: rec.imageName,
      rootfsPath: rec.rootfsDir,
      sandbox: this.sandboxInfo(pod),
      host: this.opts.host,
      recursiveReadOnlyMounts: supportsRecursiveReadOnly(handler),
      warn: (msg: string) => warnings.push(msg),
    });
    for (const w of warnings) this.logger.info(w, { container: rec.id });
    rec.cgroupsPath = spec.linux.cgroupsPath ?? '';
    rec.user = {
      uid: spec.process.user.uid,
      gid: spec.process.user.gid,
      additionalGids: spec.process.user.additionalGids ?? [],
    };
    await OciRuntime.writeBundle(rec.bundleDir, spec);
    crashPoint('container-create:after-bundle');

    if (rec.logPath) fs.mkdirSync(path.dirname(rec.logPath), { recursive: true });
    const shim = await ShimClient.spawn({
      id: rec.id,
      bundle: rec.bundleDir,
      stateDir: rec.shimDir,
      runtimeRoot: handler.root,
      runtime: handler.binary,
      logPath: rec.logPath || undefined,
      stdin: rec.config.stdin,
      stdinOnce: rec.config.stdin && rec.config.stdinOnce,
      tty: rec.config.tty,
      cgroupPaths: rec.cgroupsPath ? [rec.cgroupsPath] : [],
    });
    this.shims.set(rec.id, shim);
    rec.pid = shim.containerPid;
    crashPoint('container-create:after-shim');
  }

  private sandboxInfo(pod: SandboxRecord): SandboxRuntimeInfo {
    const HOST: NamespaceRef = { kind: 'host' };
    const pinned = (what: string, p: string | undefined): NamespaceRef => {
      if (!p) throw failedPrecondition(`pod sandbox ${pod.id} has no pinned ${what} namespace; recreate the pod`);
      return { kind: 'pinned', path: p };
    };
    const hostNet = pod.namespaceModes.network === 'NODE';
    return {
      sandboxId: pod.id,
      hostname: pod.hostname,
      network: hostNet ? HOST : pinned('network', pod.nsPaths.net),
      ipc: pod.namespaceModes.ipc === 'NODE' ? HOST : pinned('ipc', pod.nsPaths.ipc),
      uts: hostNet ? HOST : pinned('uts', pod.nsPaths.uts),
      pid:
        pod.namespaceModes.pid === 'NODE'
          ? HOST
          : pod.namespaceModes.pid === 'POD'
            ? pinned('pid', pod.nsPaths.pid)
            : undefined,
      hostnamePath: pod.hostnameFile,
      hostsPath: pod.hostsFile,
      resolvConfPath: pod.resolvConfFile,
      shmPath: pod.shmPath ?? '/dev/shm',
      cgroupParent: pod.cgroup.path,
    };
  }

  // ---- start / stop -------------------------------------------------------

  async start(idOrPrefix: string): Promise<void> {
    const rec = this.get(idOrPrefix);
    await this.lock.run(rec.id, async () => {
      await this.refresh(rec);
      if (rec.state !== 'CONTAINER_CREATED') {
        throw failedPrecondition(`container ${rec.id} is ${stateWord(rec.state)}, not created; it can only be started once`);
      }
      const runtime = new OciRuntime(this.opts.handlers.get(rec.runtimeHandler));
      // The process runs from inside `runtime start`; a short-lived one can be
      // gone before it returns, so the start time is taken before.
      const startedAt = nowNs();
      try {
        await runtime.start(rec.id);
        crashPoint('container-start:after-runtime-start');
      } catch (err) {
        // A container whose start failed is dead: record why, as containerd does.
        rec.state = 'CONTAINER_EXITED';
        rec.finishedAt = nowNs();
        rec.exitCode = 128;
        rec.reason = 'StartError';
        rec.message = errorMessage(err);
        await this.store.save(rec);
        throw err;
      }
      rec.startedAt = startedAt;
      if (rec.state === 'CONTAINER_CREATED') rec.state = 'CONTAINER_RUNNING';
      this.events.publish('CONTAINER_STARTED_EVENT', rec);
      await this.store.save(rec);
      this.watch(rec);
    });
  }

  /** Follows the shim until the container exits, then records the exit. */
  private watch(rec: ContainerRecord): void {
    if (this.watchers.has(rec.id)) return;
    const w = (async () => {
      try {
        const shim = await this.shimOf(rec);
        const exit = await shim.waitExit();
        await this.recordExit(rec, exit);
      } catch (err) {
        if (this.store.get(rec.id) && rec.state === 'CONTAINER_RUNNING') {
          // The shim died without recording an exit (killed, or crashed). Nobody
          // holds the container's stdio or would collect its exit any more, so it
          // is killed, as containerd does when a shim goes away.
          this.logger.warn('container shim is gone; killing the container', { container: rec.id, error: errorMessage(err) });
          await this.killOrphan(rec);
          await this.recordLost(rec);
        }
      } finally {
        this.watchers.delete(rec.id);
      }
    })();
    this.watchers.set(rec.id, w);
  }

  private async recordExit(rec: ContainerRecord, exit: ShimExit): Promise<void> {
    if (!this.store.get(rec.id) || rec.state === 'CONTAINER_EXITED') return;
    rec.state = 'CONTAINER_EXITED';
    rec.finishedAt = exit.exitedAtNs;
    rec.exitCode = exit.exitCode;
    rec.reason = exit.oomKilled ? 'OOMKilled' : exit.exitCode === 0 ? 'Completed' : 'Error';
    if (rec.startedAt === '0') rec.startedAt = exit.exitedAtNs;
    await this.store.save(rec);
    this.logger.info('container exited', { container: rec.id, exitCode: exit.exitCode, reason: rec.reason });
    this.events.publish('CONTAINER_STOPPED_EVENT', rec);
  }

  private async killOrphan(rec: ContainerRecord): Promise<void> {
    try {
      await new OciRuntime(this.opts.handlers.get(rec.runtimeHandler)).kill(rec.id, 'SIGKILL', true);
    } catch (err) {
      this.logger.debug('orphan kill', { container: rec.id, error: errorMessage(err) });
    }
  }

  /** A shim that vanished without recording an exit: the container is gone with it. */
  private async recordLost(rec: ContainerRecord): Promise<void> {
    rec.state = 'CONTAINER_EXITED';
    rec.finishedAt = nowNs();
    rec.exitCode = 255;
    rec.reason = 'Unknown';
    rec.message = 'the container\'s shim exited without recording an exit status';
    await this.store.save(rec);
    this.events.publish('CONTAINER_STOPPED_EVENT', rec);
  }

  private async shimOf(rec: ContainerRecord): Promise<ShimClient> {
    let shim = this.shims.get(rec.id);
    if (!shim) {
      shim = await ShimClient.connect(rec.shimDir);
      this.shims.set(rec.id, shim);
    }
    return shim;
  }

  /** Brings a record up to date with its shim (an exit may have happened unobserved). */
  private async refresh(rec: ContainerRecord): Promise<void> {
    if (rec.state === 'CONTAINER_EXITED') return;
    let shim: ShimClient;
    try {
      shim = await this.shimOf(rec);
    } catch {
      return;
    }
    const exit = await shim.readExitFile();
    if (exit && rec.state === 'CONTAINER_RUNNING') await this.recordExit(rec, exit);
  }

  /** Idempotent: stopping a container that does not exist succeeds, as the kubelet expects. */
  async stop(idOrPrefix: string, timeoutSeconds: number): Promise<void> {
    const rec = this.find(idOrPrefix);
    if (!rec || rec.phase === 'creating') return;
    await this.lock.run(rec.id, () => this.stopLocked(rec, timeoutSeconds));
  }

  private async stopLocked(rec: ContainerRecord, timeoutSeconds: number): Promise<void> {
    await this.refresh(rec);
    if (rec.state === 'CONTAINER_EXITED') return;
    const runtime = new OciRuntime(this.opts.handlers.get(rec.runtimeHandler));
    if (rec.state === 'CONTAINER_CREATED') {
      // Never started: kill the waiting init; the shim records the exit.
      await runtime.kill(rec.id, 'SIGKILL').catch(() => undefined);
      await this.awaitExit(rec, 10_000);
      return;
    }
    if (timeoutSeconds > 0) {
      await runtime.kill(rec.id, signalNumber(rec.stopSignal)).catch((err: unknown) => {
        this.logger.debug('stop signal not delivered', { container: rec.id, error: errorMessage(err) });
      });
      if (await this.awaitExit(rec, timeoutSeconds * 1000)) return;
      this.logger.info('container ignored its stop signal; killing it', { container: rec.id, signal: rec.stopSignal });
    }
    await runtime.kill(rec.id, 'SIGKILL', true).catch(() => undefined);
    if (!(await this.awaitExit(rec, 30_000))) {
      throw internal(`container ${rec.id} did not exit after SIGKILL within 30 s`);
    }
  }

  /** Waits for the recorded exit; false on timeout. */
  private async awaitExit(rec: ContainerRecord, timeoutMs: number): Promise<boolean> {
    let shim: ShimClient;
    try {
      shim = await this.shimOf(rec);
    } catch {
      await this.recordLost(rec);
      return true;
    }
    const exit = await Promise.race([
      shim.waitExit().catch(() => null),
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref()),
    ]);
    if (exit === 'timeout') return false;
    if (exit) await this.recordExit(rec, exit);
    else if (rec.state !== 'CONTAINER_EXITED') await this.recordLost(rec);
    return true;
  }

  // ---- remove -------------------------------------------------------------

  async remove(idOrPrefix: string): Promise<void> {
    const rec = this.find(idOrPrefix);
    if (!rec) return; // idempotent
    await this.lock.run(rec.id, async () => {
      if (!this.store.get(rec.id)) return;
      if (rec.state !== 'CONTAINER_EXITED' && rec.phase !== 'creating') await this.stopLocked(rec, 0);
      rec.phase = 'removing';
      await this.store.save(rec);
      crashPoint('container-remove:after-removing-record');
      await this.teardown(rec);
      this.logger.info('container removed', { container: rec.id, pod: rec.podSandboxId });
      this.events.publish('CONTAINER_DELETED_EVENT', rec);
    });
  }

  /** Deletes everything of a container: runtime state, shim, rootfs mount, snapshot, dirs, log, record. */
  private async teardown(rec: ContainerRecord): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
      }
    };
    let handler;
    try {
      handler = this.opts.handlers.get(rec.runtimeHandler);
    } catch {
      handler = undefined;
    }
    if (handler) {
      const runtime = new OciRuntime(handler);
      await step('runtime delete', () => runtime.delete(rec.id, true).catch(ignoreNotFound));
      if (rec.phase === 'removing') crashPoint('container-remove:after-runtime-delete');
    }
    // With the container gone the shim records the exit and leaves by itself.
    const shim = this.shims.get(rec.id);
    if (shim) await step('shim exit', () => Promise.race([shim.waitExit().catch(() => null), sleep(5000)]));
    await step('shim', () => stopLeftoverShim(rec.shimDir, { graceMs: 2000, waitMs: 5000 }));
    const before = problems.length;
    await step('rootfs unmount', () => this.opts.snapshotter.unmount(rec.rootfsDir));
    const rootfsStillMounted = problems.length > before;
    if (rec.phase === 'removing') crashPoint('container-remove:after-unmount');
    await step('snapshot', () => this.opts.snapshotter.remove(rec.snapshotKey).catch(ignoreNotFound));
    // Never rm -r through a rootfs that is still mounted (it would descend into the overlay).
    if (!rootfsStillMounted) await step('state dir', () => fs.promises.rm(rec.stateDir, { recursive: true, force: true }));
    await step('shim dir', () => fs.promises.rm(rec.shimDir, { recursive: true, force: true }));
    this.shims.delete(rec.id);
    if (problems.length) {
      this.logger.warn('container teardown incomplete', { container: rec.id, problems });
      throw internal(`removing container ${rec.id}: ${problems.join('; ')}`);
    }
    await this.store.delete(rec.id);
    // Only our own reservation: a create interrupted by a crash gives its name up at
    // start (see load()), and a new container may hold it by the time this finishes.
    const key = containerNameKey(rec.podSandboxId, rec.metadata.name, rec.metadata.attempt);
    if (this.names.get(key) === rec.id) this.names.delete(key);
    // The image may have been removed while this container used it: its layers
    // were kept for the container and can go now.
    if (!this.opts.images.lookup(rec.imageId)) {
      this.opts.images.collectGarbage().catch((err: unknown) =>
        this.logger.warn('layer garbage collection failed', { error: errorMessage(err) }),
      );
    }
  }

  // ---- pods ---------------------------------------------------------------

  async stopContainersOfPod(podId: string): Promise<void> {
    await Promise.all(this.ofPod(podId).map((c) => this.stop(c.id, 0)));
  }

  async removeContainersOfPod(podId: string): Promise<void> {
    for (const c of this.ofPod(podId)) await this.remove(c.id);
  }

  // ---- status, exec, update, logs ----------------------------------------

  async status(idOrPrefix: string): Promise<ContainerRecord> {
    const rec = this.get(idOrPrefix);
    await this.refresh(rec);
    return rec;
  }

  async execSync(idOrPrefix: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    const target = await this.execTarget(idOrPrefix, cmd, false);
    return target.runtime.exec(target.id, target.process, {
      timeoutMs: timeoutSeconds > 0 ? timeoutSeconds * 1000 : undefined,
    });
  }

  /** The runtime and process (the container's user, env, capabilities...) to exec `cmd` in a running container. */
  async execTarget(idOrPrefix: string, cmd: string[], tty: boolean): Promise<{ id: string; runtime: OciRuntime; process: OciProcess }> {
    if (cmd.length === 0) throw invalidArgument('cmd is required');
    const rec = this.get(idOrPrefix);
    await this.refresh(rec);
    if (rec.state !== 'CONTAINER_RUNNING') {
      throw failedPrecondition(`container ${rec.id} is ${stateWord(rec.state)}, not running; cannot exec in it`);
    }
    const runtime = new OciRuntime(this.opts.handlers.get(rec.runtimeHandler));
    const spec = JSON.parse(fs.readFileSync(path.join(rec.bundleDir, 'config.json'), 'utf8')) as { process: OciProcess };
    return { id: rec.id, runtime, process: execProcess(spec.process, cmd, tty) };
  }

  async updateResources(idOrPrefix: string, resources: LinuxContainerResources__Output | null): Promise<void> {
    const rec = this.get(idOrPrefix);
    if (!resources) return;
    await this.lock.run(rec.id, async () => {
      await this.refresh(rec);
      if (rec.state === 'CONTAINER_EXITED') {
        throw failedPrecondition(`container ${rec.id} has exited; its resources cannot be updated`);
      }
      const runtime = new OciRuntime(this.opts.handlers.get(rec.runtimeHandler));
      await runtime.update(rec.id, toOciResources(resources, this.opts.host, (m) => this.logger.info(m, { container: rec.id })));
      rec.resources = resources;
      await this.store.save(rec);
    });
  }

  async reopenLog(idOrPrefix: string): Promise<void> {
    const rec = this.get(idOrPrefix);
    await this.refresh(rec);
    if (rec.state !== 'CONTAINER_RUNNING') {
      throw failedPrecondition(`container ${rec.id} is ${stateWord(rec.state)}, not running; its log cannot be reopened`);
    }
    await (await this.shimOf(rec)).reopenLog();
  }

  async shimFor(idOrPrefix: string): Promise<ShimClient> {
    return this.shimOf(this.get(idOrPrefix));
  }

  // ---- stats --------------------------------------------------------------

  private layout?: CgroupLayout;
  private readonly sampler = new UsageSampler(() => (this.layout ??= detectCgroupLayout()));

  /** CPU and memory of the container's cgroup (running containers only), and its writable layer. */
  async usage(rec: ContainerRecord): Promise<{ cgroup?: UsageSample; writable?: { bytes: bigint; inodes: bigint; timestampNs: string } }> {
    await this.refresh(rec);
    const out: { cgroup?: UsageSample; writable?: { bytes: bigint; inodes: bigint; timestampNs: string } } = {};
    if (rec.state === 'CONTAINER_RUNNING' && rec.cgroupsPath) out.cgroup = this.sampler.sample(rec.cgroupsPath);
    else if (rec.cgroupsPath) this.sampler.forget(rec.cgroupsPath);
    try {
      const upper = this.opts.snapshotter.path(rec.snapshotKey);
      out.writable = { ...(await diskUsage(upper)), timestampNs: nowNs() };
    } catch {
      // snapshot gone (being removed): no figure
    }
    return out;
  }

  /** Filesystem the writable layers live on, for FilesystemIdentifier. */
  get snapshotRoot(): string {
    return this.opts.snapshotter.root;
  }

  // ---- restart ------------------------------------------------------------

  /** Loads records and reconciles them with the shims after a (re)start of berthd. */
  async load(): Promise<void> {
    for (const rec of this.store.load()) {
      // A create cut short by the restart never returned its id, so nothing can
      // refer to it and the kubelet will retry the create: its name is free even
      // if the rollback below fails (the record then stays hidden and its
      // teardown is retried by RemovePodSandbox or the next start).
      if (rec.phase !== 'creating') {
        this.names.set(containerNameKey(rec.podSandboxId, rec.metadata.name, rec.metadata.attempt), rec.id);
      }
      if (rec.phase !== 'ready') {
        this.logger.info(`finishing a container ${rec.phase === 'creating' ? 'create' : 'remove'} interrupted by a restart`, {
          container: rec.id,
        });
        await this.teardown(rec).catch((err: unknown) =>
          this.logger.error('could not clean up an interrupted container', { container: rec.id, error: errorMessage(err) }),
        );
        continue;
      }
      if (rec.state === 'CONTAINER_EXITED') continue;
      let shim: ShimClient | undefined;
      try {
        shim = await ShimClient.connect(rec.shimDir);
        this.shims.set(rec.id, shim);
      } catch {
        shim = undefined;
      }
      const exit = shim ? await shim.readExitFile() : null;
      if (exit) {
        if (rec.state === 'CONTAINER_CREATED' && rec.startedAt === '0') rec.state = 'CONTAINER_RUNNING';
        await this.recordExit(rec, exit);
      } else if (!shim || !(await shim.isAlive())) {
        await this.recordLost(rec);
      } else if (rec.state === 'CONTAINER_RUNNING') {
        this.watch(rec);
      } else if (rec.state === 'CONTAINER_CREATED' && (await this.startedUnrecorded(rec))) {
        // berthd died between `runtime start` and saving RUNNING: the container
        // runs, so it is recorded as running and followed (else it would show
        // CREATED forever, refuse a second start and have its exit missed).
        // The true start time is lost; the reconciliation time is an upper bound.
        this.logger.info('container was started just before a restart; recording it as running', { container: rec.id });
        rec.state = 'CONTAINER_RUNNING';
        rec.startedAt = nowNs();
        await this.store.save(rec);
        this.watch(rec);
      }
    }
  }

  /** True when the runtime says a container recorded as CREATED is past `created` (its start went through). */
  private async startedUnrecorded(rec: ContainerRecord): Promise<boolean> {
    try {
      const state = await new OciRuntime(this.opts.handlers.get(rec.runtimeHandler)).state(rec.id);
      return state.status !== 'created';
    } catch (err) {
      this.logger.debug('runtime state of a created container', { container: rec.id, error: errorMessage(err) });
      return false;
    }
  }

  /** Stops following shims (berthd shutdown); containers keep running. */
  close(): void {
    this.watchers.clear();
    this.shims.clear();
  }
}

function stateWord(s: ContainerRecord['state']): string {
  return s.replace('CONTAINER_', '').toLowerCase();
}

function ignoreNotFound(err: unknown): void {
  if (err instanceof BerthError && err.kind === 'NOT_FOUND') return;
  throw err;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
