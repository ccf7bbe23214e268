// ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats:
// cgroup CPU/memory and writable-layer usage, as the kubelet's CRI stats
// provider reads them.
import type { ContainerRecord } from '../container/record';
import type { ContainerService } from '../container/service';
import type { UsageSample } from '../cgroups/usage';
import { invalidArgument } from '../errors';
import type { ContainerStats } from '../gen/runtime/v1/ContainerStats';
import type { ContainerStatsRequest__Output } from '../gen/runtime/v1/ContainerStatsRequest';
import type { ContainerStatsResponse } from '../gen/runtime/v1/ContainerStatsResponse';
import type { CpuUsage } from '../gen/runtime/v1/CpuUsage';
import type { ListContainerStatsRequest__Output } from '../gen/runtime/v1/ListContainerStatsRequest';
import type { ListPodSandboxStatsRequest__Output } from '../gen/runtime/v1/ListPodSandboxStatsRequest';
import type { ListPodSandboxStatsResponse } from '../gen/runtime/v1/ListPodSandboxStatsResponse';
import type { MemoryUsage } from '../gen/runtime/v1/MemoryUsage';
import type { NetworkInterfaceUsage } from '../gen/runtime/v1/NetworkInterfaceUsage';
import type { NetworkUsage } from '../gen/runtime/v1/NetworkUsage';
import type { ProcessUsage } from '../gen/runtime/v1/ProcessUsage';
import type { InterfaceCounters } from '../network/netdev';
import type { PodSandboxStats } from '../gen/runtime/v1/PodSandboxStats';
import type { PodSandboxStatsRequest__Output } from '../gen/runtime/v1/PodSandboxStatsRequest';
import type { PodSandboxStatsResponse } from '../gen/runtime/v1/PodSandboxStatsResponse';
import type { SandboxRecord } from '../sandbox/record';
import type { StreamContainerStatsRequest__Output } from '../gen/runtime/v1/StreamContainerStatsRequest';
import type { StreamContainerStatsResponse } from '../gen/runtime/v1/StreamContainerStatsResponse';
import type { StreamPodSandboxStatsRequest__Output } from '../gen/runtime/v1/StreamPodSandboxStatsRequest';
import type { StreamPodSandboxStatsResponse } from '../gen/runtime/v1/StreamPodSandboxStatsResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { containerFilter, podFilter, type ContainerFilterFields, type PodFilterFields } from './filters';
import { streamInBatches } from './list_stream';
import { mapYielding } from '../util/yield';
import { EncodedReply } from './encoded_reply';
import { containerStatsEntry } from './stats_wire';

const u64 = (v: string | undefined): { value: string } | null => (v === undefined ? null : { value: v });

function cpuOf(s: UsageSample | undefined): CpuUsage | null {
  if (!s) return null;
  return { timestamp: s.timestampNs, usageCoreNanoSeconds: u64(s.cpuUsageNs), usageNanoCores: u64(s.cpuNanoCores) };
}

function memoryOf(s: UsageSample | undefined): MemoryUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs,
    workingSetBytes: u64(s.memoryWorkingSetBytes),
    availableBytes: u64(s.memoryAvailableBytes),
    usageBytes: u64(s.memoryUsageBytes),
    rssBytes: u64(s.memoryRssBytes),
    pageFaults: u64(s.pageFaults),
    majorPageFaults: u64(s.majorPageFaults),
  };
}

function processOf(s: UsageSample | undefined): ProcessUsage | null {
  return s?.processCount === undefined ? null : { timestamp: s.timestampNs, processCount: u64(s.processCount) };
}

/** containerd's choice: eth0 is the default interface, the others are listed beside it. */
export const DEFAULT_INTERFACE = 'eth0';

function networkOf(n: { timestampNs: string; interfaces: InterfaceCounters[] } | undefined): NetworkUsage | null {
  if (!n) return null;
  const usage = (i: InterfaceCounters): NetworkInterfaceUsage => ({
    name: i.name,
    rxBytes: u64(i.rxBytes),
    rxErrors: u64(i.rxErrors),
    txBytes: u64(i.txBytes),
    txErrors: u64(i.txErrors),
  });
  const def = n.interfaces.find((i) => i.name === DEFAULT_INTERFACE);
  return {
    timestamp: n.timestampNs,
    defaultInterface: def ? usage(def) : null,
    interfaces: n.interfaces.filter((i) => i !== def).map(usage),
  };
}

async function containerStatsOf(containers: ContainerService, rec: ContainerRecord): Promise<ContainerStats> {
  const usage = await containers.usage(rec);
  return {
    attributes: {
      id: rec.id,
      metadata: rec.metadata,
      labels: rec.config.labels ?? {},
      annotations: rec.config.annotations ?? {},
    },
    cpu: cpuOf(usage.cgroup),
    memory: memoryOf(usage.cgroup),
    writableLayer: usage.writable
      ? {
          timestamp: usage.writable.timestampNs,
          fsId: { mountpoint: containers.snapshotRoot },
          usedBytes: { value: usage.writable.bytes.toString() },
          inodesUsed: { value: usage.writable.inodes.toString() },
        }
      : null,
  };
}

export async function containerStats(ctx: CriContext, req: ContainerStatsRequest__Output): Promise<ContainerStatsResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  return { stats: await containerStatsOf(containers, containers.get(req.containerId)) };
}

export async function listContainerStats(ctx: CriContext, req: ListContainerStatsRequest__Output): Promise<EncodedReply> {
  const containers = ctx.containers;
  // As containerd: stats of running containers only. Each entry is encoded as it is read (stats_wire.ts).
  const entries = await mapYielding(statsContainers(ctx, req.filter), async (c) => containerStatsEntry(c, await containerStatsOf(containers, c)));
  return new EncodedReply(entries);
}

/** The containers ListContainerStats and StreamContainerStats report: as containerd, running ones only. */
function statsContainers(ctx: CriContext, f: ContainerFilterFields | null): ContainerRecord[] {
  return ctx.containers.list(containerFilter({ ...f, state: { state: 'CONTAINER_RUNNING' } }));
}

export function streamContainerStats(
  ctx: CriContext,
  req: StreamContainerStatsRequest__Output,
  sink: ServerStreamSink<StreamContainerStatsResponse>,
): Promise<void> {
  const shape = (c: ContainerRecord): Promise<ContainerStats> => containerStatsOf(ctx.containers, c);
  return streamInBatches(sink, statsContainers(ctx, req.filter), shape, (containerStats) => ({ containerStats }));
}

async function podStatsOf(ctx: CriContext, pod: SandboxRecord): Promise<PodSandboxStats> {
  const sandboxes = ctx.sandboxes;
  const containers = ctx.containers;
  // The pod cgroup's CPU rate (usage_nano_cores) is taken between two samples, as for containers.
  const cg: UsageSample | undefined = pod.state === 'ready' ? sandboxes.usage(pod) : undefined;
  const running = containers.list((c) => c.podSandboxId === pod.id && c.state === 'CONTAINER_RUNNING');
  return {
    attributes: { id: pod.id, metadata: pod.metadata, labels: pod.config.labels ?? {}, annotations: pod.config.annotations ?? {} },
    linux: {
      cpu: cpuOf(cg),
      memory: memoryOf(cg),
      network: networkOf(pod.state === 'ready' ? sandboxes.networkUsage(pod, running.map((c) => c.pid)) : undefined),
      process: processOf(cg),
      containers: await mapYielding(running, (c) => containerStatsOf(containers, c)),
    },
  };
}

export async function podSandboxStats(ctx: CriContext, req: PodSandboxStatsRequest__Output): Promise<PodSandboxStatsResponse> {
  const sandboxes = ctx.sandboxes;
  if (!req.podSandboxId) throw invalidArgument('pod_sandbox_id is required');
  return { stats: await podStatsOf(ctx, sandboxes.get(req.podSandboxId)) };
}

export async function listPodSandboxStats(ctx: CriContext, req: ListPodSandboxStatsRequest__Output): Promise<ListPodSandboxStatsResponse> {
  return { stats: await mapYielding(statsPods(ctx, req.filter), (p) => podStatsOf(ctx, p)) };
}

/** The pods ListPodSandboxStats and StreamPodSandboxStats report: ready ones. */
function statsPods(ctx: CriContext, f: PodFilterFields | null): SandboxRecord[] {
  return ctx.sandboxes.list(podFilter(ctx.sandboxes, { ...f, state: { state: 'SANDBOX_READY' } }));
}

export function streamPodSandboxStats(
  ctx: CriContext,
  req: StreamPodSandboxStatsRequest__Output,
  sink: ServerStreamSink<StreamPodSandboxStatsResponse>,
): Promise<void> {
  const shape = (p: SandboxRecord): Promise<PodSandboxStats> => podStatsOf(ctx, p);
  return streamInBatches(sink, statsPods(ctx, req.filter), shape, (podSandboxStats) => ({ podSandboxStats }));
}
