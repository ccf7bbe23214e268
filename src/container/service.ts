// Containers: the façade the CRI handlers and the pod service call. It wires
// the modules that do the work, one concern each: create, start, stop,
// remove, teardown, exit monitoring, exec, update, stats and restart
// recovery. The shim owns the running container; these modules own the
// records and reach the runtime only through the ContainerRuntime façade.
import type { CgroupStats } from '../cgroups/cgroups';
import type { BerthConfig } from '../config/config';
import type { ContainerConfig__Output } from '../gen/runtime/v1/ContainerConfig';
import type { LinuxContainerResources__Output } from '../gen/runtime/v1/LinuxContainerResources';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { ImageService } from '../image/service';
import type { Logger } from '../log/logger';
import { ContainerRuntime, type ExecResult, type ShimAttach, type ShimAttachOptions } from '../runtime/container_runtime';
import type { RuntimeHandlerRegistry } from '../runtime/handlers';
import type { HostInfo } from '../runtime/spec/host_info';
import type { Snapshotter } from '../snapshotter/snapshotter';
import { KeyedMutex } from '../util/keyed_mutex';
import { settleAll } from '../util/settle';
import { checkpointContainer, CriuProbe } from './checkpoint';
import { ContainerCreator } from './create';
import { IdmapHelper } from '../runtime/idmap';
import type { ContainerDeps, PodLookup } from './deps';
import type { ContainerEventBus } from './events';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';
import { liveShimCount } from '../runtime/shim_client';
import { ContainerExec, type ExecTarget } from './exec';
import { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { recoverContainers } from './recovery';
import { removeContainer } from './remove';
import { startContainer } from './start';
import { ContainerUsageReader, type ContainerUsage } from './stats';
import { isExited } from './state';
import { ContainerStopper } from './stop';
import { ContainerStore } from './store';
import { ContainerTeardown } from './teardown';
import { reopenLog, updateResources } from './update';

export interface ContainerServiceOptions {
  config: BerthConfig;
  logger: Logger;
  handlers: RuntimeHandlerRegistry;
  images: ImageService;
  snapshotter: Snapshotter;
  pods: PodLookup;
  host: HostInfo;
  /** Lifecycle events (GetContainerEvents), shared with the pod service. */
  events: ContainerEventBus;
  metrics: RuntimeMetrics;
}

export class ContainerService {
  /** Lifecycle events, for GetContainerEvents. */
  readonly events: ContainerEventBus;
  readonly store: ContainerStore;
  private readonly deps: ContainerDeps;
  private readonly monitor: ExitMonitor;
  private readonly teardown: ContainerTeardown;
  private readonly creator: ContainerCreator;
  private readonly stopper: ContainerStopper;
  private readonly exec: ContainerExec;
  private readonly usageReader: ContainerUsageReader;
  private readonly criu = new CriuProbe();

  constructor(opts: ContainerServiceOptions) {
    const logger = opts.logger.child({ component: 'containers' });
    this.events = opts.events;
    this.store = new ContainerStore(opts.config.root, logger);
    const runtime = new ContainerRuntime((name) => opts.handlers.get(name), { spareShims: true });
    this.deps = { ...opts, logger, store: this.store, runtime, events: this.events, lock: new KeyedMutex(), idmap: new IdmapHelper() };
    this.monitor = new ExitMonitor(this.deps);
    this.teardown = new ContainerTeardown(this.deps);
    this.creator = new ContainerCreator(this.deps, this.teardown);
    this.stopper = new ContainerStopper(this.deps, this.monitor);
    this.exec = new ContainerExec(this.deps, this.monitor);
    this.usageReader = new ContainerUsageReader(this.deps, this.monitor);
  }

  /** A created container by id or unique prefix; NOT_FOUND naming the id. */
  get(idOrPrefix: string): ContainerRecord {
    return this.store.require(idOrPrefix);
  }

  /** Created containers (in creation order) that pass `filter`. */
  list(filter?: (rec: ContainerRecord) => boolean): ContainerRecord[] {
    return this.store.visible(filter);
  }

  async create(podSandboxId: string, config: ContainerConfig__Output, sandboxConfig: PodSandboxConfig__Output | null): Promise<string> {
    const handler = this.deps.pods.get(podSandboxId).runtimeHandler;
    return this.deps.metrics.traced(
      'create_container',
      this.deps.logger,
      (trace) => this.deps.metrics.operation('create_container', handler, () => this.creator.create(podSandboxId, config, sandboxConfig, trace)),
      (id) => ({ container: id ?? '', pod: podSandboxId }),
    );
  }

  async start(idOrPrefix: string): Promise<void> {
    const rec = this.store.require(idOrPrefix);
    await this.deps.metrics.traced(
      'start_container',
      this.deps.logger,
      (trace) => this.deps.metrics.operation('start_container', rec.runtimeHandler, () => startContainer(this.deps, this.monitor, idOrPrefix, trace)),
      () => ({ container: rec.id }),
    );
  }

  /** Idempotent; `signal`: the caller gave up (berth then stops waiting and does not escalate). */
  stop(idOrPrefix: string, timeoutSeconds: number, signal?: AbortSignal): Promise<void> {
    const handler = this.store.find(idOrPrefix)?.runtimeHandler ?? '';
    return this.deps.metrics.operation('stop_container', handler, () => this.stopper.stop(idOrPrefix, timeoutSeconds, signal));
  }

  /** berth-shim processes alive, recognised by pid file and command line (berth_shims). */
  liveShims(): Promise<number> {
    return liveShimCount(this.store.list().map((c) => c.shimDir));
  }

  remove(idOrPrefix: string): Promise<void> {
    return removeContainer(this.deps, this.stopper, this.teardown, idOrPrefix);
  }

  /** The record brought up to date with its shim. */
  async status(idOrPrefix: string): Promise<ContainerRecord> {
    const rec = this.store.require(idOrPrefix);
    await this.monitor.refresh(rec);
    return rec;
  }

  execSync(idOrPrefix: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    return this.exec.execSync(idOrPrefix, cmd, timeoutSeconds);
  }

  execTarget(idOrPrefix: string, cmd: string[], tty: boolean): Promise<ExecTarget> {
    return this.exec.target(idOrPrefix, cmd, tty);
  }

  attach(rec: ContainerRecord, opts: ShimAttachOptions): Promise<ShimAttach> {
    return this.deps.runtime.attach(rec, opts);
  }

  updateResources(idOrPrefix: string, resources: LinuxContainerResources__Output | null): Promise<void> {
    return updateResources(this.deps, this.monitor, idOrPrefix, resources);
  }

  /** CRIU checkpoint into a tar archive at `location`; FAILED_PRECONDITION where CRIU does not work. */
  checkpoint(idOrPrefix: string, location: string): Promise<void> {
    return checkpointContainer(this.deps, this.monitor, this.criu, idOrPrefix, location);
  }

  reopenLog(idOrPrefix: string): Promise<void> {
    return reopenLog(this.deps, this.monitor, idOrPrefix);
  }

  usage(rec: ContainerRecord): Promise<ContainerUsage> {
    return this.usageReader.usage(rec);
  }

  /** The running container's cgroup figures, without sampling the CPU rate or walking the writable layer. */
  cgroupStats(rec: ContainerRecord): Promise<CgroupStats | undefined> {
    return this.usageReader.cgroupStats(rec);
  }

  /** Filesystem the writable layers live on, for FilesystemIdentifier. */
  get snapshotRoot(): string {
    return this.deps.snapshotter.root;
  }

  // ---- the pod side (StopPodSandbox / RemovePodSandbox) ---------------------

  /** Kills them side by side; each killed one also drops its runtime side at once (see ContainerTeardown.releaseRuntime). */
  async stopContainersOfPod(podId: string): Promise<void> {
    await Promise.all(
      this.store.ofPod(podId).map(async (c) => {
        await this.stop(c.id, 0);
        await this.deps.lock.run(c.id, async () => {
          const rec = this.store.get(c.id);
          if (rec?.phase === 'ready' && isExited(rec)) await this.teardown.releaseRuntime(rec);
        });
      }),
    );
  }

  /** Each container's removal is its own (own lock, record, mounts): they run side by side; all are tried, the first failure is reported. */
  async removeContainersOfPod(podId: string): Promise<void> {
    await settleAll(this.store.ofPod(podId).map((c) => this.remove(c.id)));
  }

  /** Loads records and reconciles them with the shims after a (re)start of berthd. */
  load(): Promise<void> {
    return recoverContainers(this.deps, this.monitor, this.teardown);
  }

  /** Stops following shims (berthd shutdown); containers keep running. */
  close(): void {
    this.monitor.close();
    this.deps.runtime.close();
  }
}
