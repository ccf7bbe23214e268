// Pod sandboxes: pinned namespaces (no pause container, nothing pulled), a
// pod cgroup, /dev/shm, the pod's resolv.conf/hosts/hostname, and a durable
// record. This is the façade the CRI and the container side use; the work is
// in run.ts (create and roll back), teardown.ts (stop and remove),
// recovery.ts (start-up) and namespaces/ (pinning, berth-pause, propagation).
import * as path from 'node:path';
import type { CgroupLayout } from '../cgroups/cgroups';
import { UsageSampler, type UsageSample } from '../cgroups/usage';
import type { BerthConfig } from '../config/config';
import { notFound } from '../errors';
import type { Logger } from '../log/logger';
import type { RuntimeHandler } from '../runtime/handlers';
import { KeyedMutex } from '../util/keyed_mutex';
import type { PodNetwork } from './cni_adapter';
import { lazyCgroupLayout, type SandboxParts } from './parts';
import { pauseAlive } from './namespaces/pause';
import { NamespacePinner } from './namespaces/pinner';
import { PodsMountPropagation } from './namespaces/propagation';
import type { SandboxRecord } from './record';
import { recoverPods } from './recovery';
import { updatePodResources, type PodResources } from './resources';
import { PodCreator, type PodSpec } from './run';
import { SandboxStore } from './store';
import { PodTeardown, type PodContainers } from './teardown';

export interface SandboxServiceOptions {
  config: BerthConfig;
  logger: Logger;
  /** Resolves runtime_handler names (RuntimeHandlerRegistry). */
  handlers: { get(name: string): RuntimeHandler };
  network: PodNetwork;
  /** The container side: a pod's stop and removal take its containers with it. */
  containers: PodContainers;
  pinner?: NamespacePinner;
  /** Detected from the host when absent. */
  cgroupLayout?: CgroupLayout;
  /** Parent of pod cgroups when the pod names none. */
  defaultCgroupParent?: string;
  shmSizeBytes?: number;
}

export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

export class SandboxService {
  readonly store: SandboxStore;
  /** The container side: a pod's stop and removal take its containers with it. */
  readonly containers: PodContainers;
  readonly defaultCgroupParent: string;
  /** Serialises run/stop/remove of the same pod. */
  private readonly locks = new KeyedMutex();
  private readonly parts: SandboxParts;
  private readonly creator: PodCreator;
  private readonly teardown: PodTeardown;
  private readonly propagation: PodsMountPropagation;
  private readonly sampler: UsageSampler;

  constructor(opts: SandboxServiceOptions) {
    const logger = opts.logger.child({ component: 'sandbox' });
    this.containers = opts.containers;
    this.defaultCgroupParent = opts.defaultCgroupParent ?? '/berth';
    const podsStateDir = path.join(opts.config.state, 'pods');
    const podsRootDir = path.join(opts.config.root, 'pods');
    const pinner = opts.pinner ?? new NamespacePinner();
    this.store = new SandboxStore(podsRootDir, logger);
    const cgroupLayout = lazyCgroupLayout(opts.cgroupLayout);
    this.parts = { store: this.store, pinner, network: opts.network, cgroupLayout, logger, podsStateDir, podsRootDir };
    this.propagation = new PodsMountPropagation(podsStateDir, pinner, logger);
    this.sampler = new UsageSampler(cgroupLayout);
    this.teardown = new PodTeardown(this.parts, () => this.containers);
    this.creator = new PodCreator(this.parts, {
      locks: this.locks,
      propagation: this.propagation,
      teardown: this.teardown,
      handlers: opts.handlers,
      shmSizeBytes: opts.shmSizeBytes ?? DEFAULT_SHM_SIZE,
    });
  }

  /** Loads the records and reconciles them with the machine (see recovery.ts). */
  load(): Promise<void> {
    return recoverPods(this.parts, this.teardown);
  }

  /** Undoes the private mount of <state>/pods once no pod uses it; called on daemon shutdown. Pods are never touched. */
  close(): Promise<void> {
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

  /** READY only for a fully created pod whose berth-pause (when it has one) still runs. */
  criState(rec: SandboxRecord): 'SANDBOX_READY' | 'SANDBOX_NOTREADY' {
    if (rec.state !== 'ready') return 'SANDBOX_NOTREADY';
    if (rec.pausePid !== undefined && !pauseAlive(rec)) return 'SANDBOX_NOTREADY';
    return 'SANDBOX_READY';
  }

  /** RunPodSandbox of a checked request (src/cri/validate_pod.ts); returns the new pod's id. */
  run(spec: PodSpec): Promise<string> {
    return this.creator.run(spec);
  }

  /** Stops the pod's containers, detaches its network and drops its namespaces. Missing pod: nothing to do. */
  stop(idOrPrefix: string): Promise<void> {
    return this.locked(idOrPrefix, (rec) => this.teardown.stop(rec));
  }

  /** Stops (if needed) and deletes the pod and its containers. Missing pod: nothing to do. */
  remove(idOrPrefix: string): Promise<void> {
    return this.locked(idOrPrefix, async (rec) => {
      await this.teardown.remove(rec);
      this.sampler.forget(rec.cgroup.path);
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

  /** CPU (with its rate since the last sample) and memory of the pod cgroup. */
  usage(rec: SandboxRecord): UsageSample {
    return this.sampler.sample(rec.cgroup.path);
  }

  /** Runs `fn` on the pod under its lock; a pod missing (or removed meanwhile) is nothing to do. */
  private async locked(idOrPrefix: string, fn: (rec: SandboxRecord) => Promise<void>): Promise<void> {
    const found = this.find(idOrPrefix);
    if (!found) return;
    await this.locks.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (rec) await fn(rec);
    });
  }
}
