// Pod sandboxes: pinned namespaces (no pause container, nothing pulled), a
// pod cgroup, /dev/shm, the pod's resolv.conf/hosts/hostname, and a durable
// record. This is the façade the CRI and the container side use; the work is
// in run.ts (create and roll back), teardown.ts (stop and remove),
// recovery.ts (start-up) and namespaces/ (pinning, berth-pause, propagation).
import * as path from 'node:path';
import { PodCgroup, type CgroupLayout, type CgroupStats } from '../cgroups/cgroups';
import { podCgroupDriver, type PodCgroupDriver } from '../cgroups/pod_driver';
import type { SystemdManager } from '../cgroups/systemd/manager';
import { UsageSampler, type UsageSample } from '../cgroups/usage';
import type { BerthConfig } from '../config/config';
import type { ContainerEventBus } from '../container/events';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';
import { notFound } from '../errors';
import type { Logger } from '../log/logger';
import type { RuntimeHandler } from '../runtime/handlers';
import { netnsCounters, type InterfaceCounters } from '../network/netdev';
import { KeyedMutex } from '../util/keyed_mutex';
import { nowNs } from '../util/time';
import type { PodNetwork } from './cni_adapter';
import { lazyCgroupLayout, type SandboxParts } from './parts';
import { PauseWatch } from './namespaces/pause';
import { NamespacePinner } from './namespaces/pinner';
import { PodsMountPropagation } from './namespaces/propagation';
import type { SandboxRecord } from './record';
import { recoverPods } from './recovery';
import { updatePodResources, type PodResources } from './resources';
import { podNetworkSysctls } from './network_sysctls';
import { PodCreator, type PodSpec } from './run';
import { SandboxStore } from './store';
import { removedView } from './state';
import { PodTeardown, type PodContainers } from './teardown';

export interface SandboxServiceOptions {
  config: BerthConfig;
  logger: Logger;
  /** Resolves runtime_handler names (RuntimeHandlerRegistry). */
  handlers: { get(name: string): RuntimeHandler };
  network: PodNetwork;
  /** The container side: a pod's stop and removal take its containers with it. */
  containers: PodContainers;
  /** Pod lifecycle events go here, with the containers' (GetContainerEvents). */
  events: ContainerEventBus;
  metrics: RuntimeMetrics;
  pinner?: NamespacePinner;
  /** Detected from the host when absent. */
  cgroupLayout?: CgroupLayout;
  /** Parent of pod cgroups when the pod names none (cgroupfs driver). */
  defaultCgroupParent?: string;
  /** systemd's D-Bus API, for runtime.cgroup_driver = "systemd". */
  systemd?: SystemdManager;
  shmSizeBytes?: number;
}

export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** How a pod is named in its phase-trace debug line. */
const podNames = (rec: SandboxRecord): Record<string, string> => ({ pod: rec.id, name: rec.metadata.name });

export class SandboxService {
  readonly store: SandboxStore;
  /** The container side: a pod's stop and removal take its containers with it. */
  readonly containers: PodContainers;
  readonly cgroupDriver: PodCgroupDriver;
  /** Serialises run/stop/remove of the same pod. */
  private readonly locks = new KeyedMutex();
  private readonly parts: SandboxParts;
  private readonly creator: PodCreator;
  private readonly teardown: PodTeardown;
  private readonly propagation: PodsMountPropagation;
  /** Liveness of each ready pod's berth-pause, so lists read no /proc file. */
  private readonly pauses = new PauseWatch();
  private readonly sampler: UsageSampler;
  private readonly events: ContainerEventBus;
  private readonly handlers: SandboxServiceOptions['handlers'];
  private readonly metrics: RuntimeMetrics;

  constructor(opts: SandboxServiceOptions) {
    const logger = opts.logger.child({ component: 'sandbox' });
    this.containers = opts.containers;
    this.events = opts.events;
    this.handlers = opts.handlers;
    this.metrics = opts.metrics;
    const podsStateDir = path.join(opts.config.state, 'pods');
    const podsRootDir = path.join(opts.config.root, 'pods');
    const pinner = opts.pinner ?? new NamespacePinner();
    this.store = new SandboxStore(podsRootDir, logger);
    const cgroupLayout = lazyCgroupLayout(opts.cgroupLayout);
    this.cgroupDriver = podCgroupDriver(opts.config.runtime.cgroup_driver, cgroupLayout, opts.systemd, opts.defaultCgroupParent);
    this.parts = { store: this.store, pinner, network: opts.network, cgroupLayout, cgroups: this.cgroupDriver, logger, podsStateDir, podsRootDir };
    this.propagation = new PodsMountPropagation(podsStateDir, pinner, logger);
    this.sampler = new UsageSampler(cgroupLayout);
    this.teardown = new PodTeardown(this.parts, () => this.containers);
    this.creator = new PodCreator(this.parts, {
      locks: this.locks,
      propagation: this.propagation,
      teardown: this.teardown,
      handlers: opts.handlers,
      shmSizeBytes: opts.shmSizeBytes ?? DEFAULT_SHM_SIZE,
      podNetworkSysctls: podNetworkSysctls(opts.config),
    });
  }

  /** Loads the records and reconciles them with the machine (see recovery.ts). */
  load(): Promise<void> {
    return recoverPods(this.parts, this.teardown);
  }

  /** Undoes the private mount of <state>/pods once no pod uses it; called on daemon shutdown. Pods are never touched. */
  close(): Promise<void> {
    this.pauses.close();
    return this.propagation.close();
  }

  /** The record for an exact id or a unique id prefix; undefined when none. Ambiguous prefixes are an error. */
  find(idOrPrefix: string): SandboxRecord | undefined {
    return this.store.find(idOrPrefix);
  }

  /** The record, or NOT_FOUND. */
  get(idOrPrefix: string): SandboxRecord {
    const rec = this.find(idOrPrefix);
    if (!rec) throw notFound(`pod sandbox "${idOrPrefix}" not found`);
    return rec;
  }

  /** Pods RunPodSandbox returned (those still being created are left out), oldest first, that pass `filter`. */
  list(filter?: (rec: SandboxRecord) => boolean): SandboxRecord[] {
    return this.store.list((r) => r.state !== 'creating' && (!filter || filter(r)));
  }

  /** Changes whenever list() or criState() may answer differently: a record changed, or a pause was found dead. */
  listGeneration(): readonly [number, number] {
    return [this.store.generation, this.pauses.generation()];
  }

  /**
   * READY only for a fully created pod whose berth-pause (when it has one)
   * still runs, as of a PauseWatch reading at most PAUSE_CHECK_MS old
   * (checkPause() makes it current for one pod).
   */
  criState(rec: SandboxRecord): 'SANDBOX_READY' | 'SANDBOX_NOTREADY' {
    if (rec.state !== 'ready') return 'SANDBOX_NOTREADY';
    if (rec.pausePid !== undefined && !this.pauses.alive(rec)) return 'SANDBOX_NOTREADY';
    return 'SANDBOX_READY';
  }

  /** Brings what criState() knows of the pod's berth-pause up to date (PodSandboxStatus). */
  async checkPause(rec: SandboxRecord): Promise<void> {
    if (rec.state === 'ready' && rec.pausePid !== undefined) await this.pauses.aliveNow(rec);
  }

  /** RunPodSandbox of a checked request (src/cri/validate_pod.ts); returns the new pod's id. */
  async run(spec: PodSpec): Promise<string> {
    const id = await this.metrics.traced(
      'run_pod_sandbox',
      this.parts.logger,
      (trace) => this.metrics.operation('run_pod_sandbox', this.handlerLabel(spec.runtimeHandler), () => this.creator.run(spec, trace)),
      (podId) => ({ pod: podId ?? '', name: spec.metadata.name }),
    );
    const rec = this.store.get(id);
    if (rec) {
      this.events.publishSandbox('CONTAINER_CREATED_EVENT', rec);
      this.events.publishSandbox('CONTAINER_STARTED_EVENT', rec);
    }
    return id;
  }

  /** Stops the pod's containers, detaches its network and drops its namespaces. Missing pod: nothing to do. */
  stop(idOrPrefix: string): Promise<void> {
    return this.locked(idOrPrefix, (rec) =>
      this.metrics.operation('stop_pod_sandbox', rec.runtimeHandler, async () => {
        const wasReady = rec.state === 'ready';
        await this.metrics.traced('stop_pod_sandbox', this.parts.logger, (trace) => this.teardown.stop(rec, trace), () => podNames(rec));
        const now = this.store.get(rec.id);
        if (wasReady && now) this.events.publishSandbox('CONTAINER_STOPPED_EVENT', now);
      }),
    );
  }

  /** Stops (if needed) and deletes the pod and its containers. Missing pod: nothing to do. */
  remove(idOrPrefix: string): Promise<void> {
    return this.locked(idOrPrefix, async (rec) => {
      const wasReady = rec.state === 'ready';
      await this.metrics.traced('remove_pod_sandbox', this.parts.logger, (trace) => this.teardown.remove(rec, trace), () => podNames(rec));
      this.sampler.forget(rec.cgroup.path);
      const last = removedView(rec);
      if (wasReady) this.events.publishSandbox('CONTAINER_STOPPED_EVENT', last);
      this.events.publishSandbox('CONTAINER_DELETED_EVENT', last);
    });
  }

  /** UpdatePodSandboxResources: limits on the pod cgroup, kept in the record. NOT_FOUND for an unknown pod. */
  async updateResources(idOrPrefix: string, req: PodResources): Promise<void> {
    const id = this.get(idOrPrefix).id;
    await this.locks.run(id, async () => {
      const rec = this.store.get(id);
      if (!rec) throw notFound(`pod sandbox "${idOrPrefix}" was removed`);
      await updatePodResources(this.parts, rec, req);
    });
  }

  /** The pod cgroup's figures, without sampling the CPU rate (ListPodSandboxMetrics). */
  cgroupStats(rec: SandboxRecord): CgroupStats {
    return new PodCgroup(this.parts.cgroupLayout(), rec.cgroup.path).stats();
  }

  /** CPU (with its rate since the last sample) and memory of the pod cgroup. */
  usage(rec: SandboxRecord): UsageSample {
    return this.sampler.sample(rec.cgroup.path);
  }

  /**
   * Per-interface counters of the pod's network namespace, read through a
   * process in it: berth-pause, else one of `pids` (its running containers).
   * Host-network pods have none, as with containerd: the node's figures are
   * the kubelet's to report. Undefined too when no process is in the netns.
   */
  networkUsage(rec: SandboxRecord, pids: number[]): { timestampNs: string; interfaces: InterfaceCounters[] } | undefined {
    const ns = rec.nsPaths.net;
    if (!ns || rec.state !== 'ready') return undefined;
    const interfaces = netnsCounters(ns, rec.pausePid !== undefined ? [rec.pausePid, ...pids] : pids);
    return interfaces && { timestampNs: nowNs(), interfaces };
  }

  /** A configured handler's name; "unknown" for one that is not (a label value must come from a bounded set). */
  private handlerLabel(name: string): string {
    try {
      return this.handlers.get(name).name;
    } catch {
      return 'unknown';
    }
  }

  /** Runs `fn` on the pod under its lock; a pod missing (or removed meanwhile) is nothing to do. */
  private async locked(idOrPrefix: string, fn: (rec: SandboxRecord) => Promise<void>): Promise<void> {
    const found = this.find(idOrPrefix);
    if (!found) return;
    await this.locks.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (!rec) return;
      try {
        await fn(rec);
      } finally {
        // Stopped or removed: the record answers from now on (a failed stop is watched again when asked).
        this.pauses.forget(rec.id);
      }
    });
  }
}
