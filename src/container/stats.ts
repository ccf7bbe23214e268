// Container resource usage for the CRI stats RPCs: CPU and memory from the
// container's cgroup, the writable layer from the snapshotter's figure of its upper dir.
import { detectCgroupLayout, PodCgroup, type CgroupLayout, type CgroupStats } from '../cgroups/cgroups';
import { UsageSampler, type UsageSample } from '../cgroups/usage';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { isRunning } from './state';

export interface ContainerUsage {
  cgroup?: UsageSample;
  writable?: { bytes: bigint; inodes: bigint; timestampNs: string };
}

/**
 * CPU and memory of a running container's cgroup, and its writable layer.
 * The cgroup's files stay open while the container runs: they are closed
 * when it stops, and any left of containers gone otherwise are closed at the
 * next read after the container records changed.
 */
export class ContainerUsageReader {
  private layout?: CgroupLayout;
  // CPU and memory alone: all a CRI ContainerStats carries.
  private readonly sampler = new UsageSampler(() => (this.layout ??= detectCgroupLayout()), 'cpuMemory', true);
  private checkedGeneration = -1;
  /** Containers by writable-layer key, as of the records' generation `byLayerGeneration`. */
  private byLayer = new Map<string, ContainerRecord>();
  private byLayerGeneration = -1;

  constructor(
    private readonly deps: ContainerDeps,
    private readonly monitor: ExitMonitor,
  ) {
    deps.events.subscribe((e) => {
      if (e.container?.cgroupsPath && (e.type === 'CONTAINER_STOPPED_EVENT' || e.type === 'CONTAINER_DELETED_EVENT')) {
        this.sampler.forget(e.container.cgroupsPath);
      }
    });
    deps.snapshotter.setWritableActivityProbe((key) => this.layerActivity(key));
  }

  /**
   * What has run in the container of a writable layer: its cgroup's CPU time
   * while it runs, its state otherwise (a container not running has no
   * process that could write). Undefined when unknown.
   */
  private layerActivity(key: string): string | undefined {
    const store = this.deps.store;
    if (store.generation !== this.byLayerGeneration) {
      this.byLayerGeneration = store.generation;
      this.byLayer = new Map(store.list().map((c) => [c.snapshotKey, c]));
    }
    const rec = this.byLayer.get(key);
    if (!rec) return undefined;
    if (!isRunning(rec)) return rec.state;
    const cpu = rec.cgroupsPath ? this.sampler.cpuUsage(rec.cgroupsPath) : undefined;
    return cpu === undefined ? undefined : `${rec.state} ${cpu}`;
  }

  /** Cgroup files held open, for tests. */
  get openFiles(): number {
    return this.sampler.openFiles;
  }

  async usage(rec: ContainerRecord): Promise<ContainerUsage> {
    this.forgetGone();
    await this.monitor.refresh(rec);
    const out: ContainerUsage = {};
    if (isRunning(rec) && rec.cgroupsPath) out.cgroup = this.sampler.sample(rec.cgroupsPath);
    else if (rec.cgroupsPath) this.sampler.forget(rec.cgroupsPath);
    // Measured in the background by the snapshotter (a few seconds old at most), never walked here.
    const w = await this.deps.snapshotter.snapshotUsage(rec.snapshotKey).catch(() => undefined);
    if (w) out.writable = { bytes: w.bytes, inodes: w.inodes, timestampNs: (BigInt(w.at) * 1_000_000n).toString() };
    return out;
  }

  /** Forgets the cgroups of containers no longer running, once per change of the records. */
  private forgetGone(): void {
    const store = this.deps.store;
    if (store.generation === this.checkedGeneration) return;
    this.checkedGeneration = store.generation;
    const running = new Set<string>();
    for (const c of store.list()) if (isRunning(c) && c.cgroupsPath) running.add(c.cgroupsPath);
    this.sampler.retain(running);
  }

  /** The cgroup figures alone (no CPU-rate sample, no writable-layer figure), for ListPodSandboxMetrics. */
  async cgroupStats(rec: ContainerRecord): Promise<CgroupStats | undefined> {
    await this.monitor.refresh(rec);
    if (!isRunning(rec) || !rec.cgroupsPath) return undefined;
    return new PodCgroup((this.layout ??= detectCgroupLayout()), rec.cgroupsPath).stats();
  }
}
