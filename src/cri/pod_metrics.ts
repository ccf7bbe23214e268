// ListMetricDescriptors and ListPodSandboxMetrics: the cAdvisor series the
// kubelet serves on /metrics/cadvisor, from the runtime instead of cAdvisor
// (PodAndContainerStatsFromCRI). Names, types and labels follow cAdvisor;
// the CRI carries uint64 values, so "_seconds_total" series are whole
// seconds, as CRI-O sends them. Cgroup files and /proc/<pid>/net/dev only:
// no CPU-rate sample is taken and no writable layer is walked.
import type { CgroupStats, PressureTotals } from '../cgroups/cgroups';
import type { ContainerRecord } from '../container/record';
import type { ContainerMetrics } from '../gen/runtime/v1/ContainerMetrics';
import type { ListMetricDescriptorsRequest__Output } from '../gen/runtime/v1/ListMetricDescriptorsRequest';
import type { ListMetricDescriptorsResponse } from '../gen/runtime/v1/ListMetricDescriptorsResponse';
import type { ListPodSandboxMetricsRequest__Output } from '../gen/runtime/v1/ListPodSandboxMetricsRequest';
import type { ListPodSandboxMetricsResponse } from '../gen/runtime/v1/ListPodSandboxMetricsResponse';
import type { Metric } from '../gen/runtime/v1/Metric';
import type { MetricDescriptor } from '../gen/runtime/v1/MetricDescriptor';
import type { PodSandboxMetrics } from '../gen/runtime/v1/PodSandboxMetrics';
import type { InterfaceCounters } from '../network/netdev';
import type { SandboxRecord } from '../sandbox/record';
import type { StreamPodSandboxMetricsRequest__Output } from '../gen/runtime/v1/StreamPodSandboxMetricsRequest';
import type { StreamPodSandboxMetricsResponse } from '../gen/runtime/v1/StreamPodSandboxMetricsResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { streamInBatches } from './list_stream';
import { mapYielding } from '../util/yield';

/** The labels every series carries, in this order (cAdvisor's, sorted). */
export const BASE_LABELS = ['container', 'id', 'image', 'name', 'namespace', 'pod'] as const;

type Kind = 'COUNTER' | 'GAUGE';
interface Def {
  name: string;
  help: string;
  kind: Kind;
  extra: string[];
}

const def = (name: string, kind: Kind, help: string, extra: string[] = []): Def => ({ name, kind, help, extra });

const PRESSURE: Def[] = (['cpu', 'memory', 'io'] as const).flatMap((r) => [
  def(`container_pressure_${r}_waiting_seconds_total`, 'COUNTER', `Total time duration tasks in the container have waited due to ${r} congestion.`),
  def(`container_pressure_${r}_stalled_seconds_total`, 'COUNTER', `Total time duration no tasks in the container could make progress due to ${r} congestion.`),
]);

const NETWORK: Array<[Def, keyof InterfaceCounters]> = [
  [def('container_network_receive_bytes_total', 'COUNTER', 'Cumulative count of bytes received', ['interface']), 'rxBytes'],
  [def('container_network_receive_packets_total', 'COUNTER', 'Cumulative count of packets received', ['interface']), 'rxPackets'],
  [def('container_network_receive_errors_total', 'COUNTER', 'Cumulative count of errors encountered while receiving', ['interface']), 'rxErrors'],
  [def('container_network_receive_packets_dropped_total', 'COUNTER', 'Cumulative count of packets dropped while receiving', ['interface']), 'rxDropped'],
  [def('container_network_transmit_bytes_total', 'COUNTER', 'Cumulative count of bytes transmitted', ['interface']), 'txBytes'],
  [def('container_network_transmit_packets_total', 'COUNTER', 'Cumulative count of packets transmitted', ['interface']), 'txPackets'],
  [def('container_network_transmit_errors_total', 'COUNTER', 'Cumulative count of errors encountered while transmitting', ['interface']), 'txErrors'],
  [def('container_network_transmit_packets_dropped_total', 'COUNTER', 'Cumulative count of packets dropped while transmitting', ['interface']), 'txDropped'],
];

export const METRIC_DEFS: Def[] = [
  def('container_cpu_usage_seconds_total', 'COUNTER', 'Cumulative cpu time consumed in seconds.'),
  def('container_memory_usage_bytes', 'GAUGE', 'Current memory usage in bytes, including all memory regardless of when it was accessed'),
  def('container_memory_working_set_bytes', 'GAUGE', 'Current working set in bytes.'),
  def('container_memory_rss', 'GAUGE', 'Size of RSS in bytes.'),
  def('container_memory_mapped_file', 'GAUGE', 'Size of memory mapped files in bytes.'),
  def('container_memory_failures_total', 'COUNTER', 'Cumulative count of memory allocation failures.', ['failure_type', 'scope']),
  def('container_processes', 'GAUGE', 'Number of processes running inside the container.'),
  ...PRESSURE,
  ...NETWORK.map(([d]) => d),
];

export function listMetricDescriptors(_ctx: CriContext, _req: ListMetricDescriptorsRequest__Output): Promise<ListMetricDescriptorsResponse> {
  const descriptors: MetricDescriptor[] = METRIC_DEFS.map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE_LABELS, ...d.extra] }));
  return Promise.resolve({ descriptors });
}

const NS_PER_S = 1_000_000_000n;
const US_PER_S = 1_000_000n;

/** The cgroup series of one cgroup (a container's, or the pod's with container=""). */
function cgroupMetrics(s: CgroupStats, base: string[]): Metric[] {
  const out: Metric[] = [];
  const add = (name: string, kind: Kind, value: string | bigint | undefined, extra: string[] = []) => {
    if (value === undefined) return;
    // Timestamp 0: gathered live, as the CRI asks.
    out.push({ name, timestamp: '0', metricType: kind, labelValues: [...base, ...extra], value: { value: value.toString() } });
  };
  add('container_cpu_usage_seconds_total', 'COUNTER', s.cpuUsageNs === undefined ? undefined : BigInt(s.cpuUsageNs) / NS_PER_S);
  add('container_memory_usage_bytes', 'GAUGE', s.memoryUsageBytes);
  add('container_memory_working_set_bytes', 'GAUGE', s.memoryWorkingSetBytes);
  add('container_memory_rss', 'GAUGE', s.memoryRssBytes);
  add('container_memory_mapped_file', 'GAUGE', s.memoryMappedFileBytes);
  if (s.pageFaults !== undefined && s.majorPageFaults !== undefined) {
    // cAdvisor's pgfault counts the minor ones apart from the major ones.
    const minor = BigInt(s.pageFaults) - BigInt(s.majorPageFaults);
    add('container_memory_failures_total', 'COUNTER', minor < 0n ? 0n : minor, ['pgfault', 'container']);
    add('container_memory_failures_total', 'COUNTER', s.majorPageFaults, ['pgmajfault', 'container']);
  }
  add('container_processes', 'GAUGE', s.processCount);
  for (const r of ['cpu', 'memory', 'io'] as const) {
    const p: PressureTotals | undefined = s.psi?.[r];
    if (!p) continue;
    add(`container_pressure_${r}_waiting_seconds_total`, 'COUNTER', BigInt(p.someUsec) / US_PER_S);
    if (p.fullUsec !== undefined) add(`container_pressure_${r}_stalled_seconds_total`, 'COUNTER', BigInt(p.fullUsec) / US_PER_S);
  }
  return out;
}

function networkMetrics(interfaces: InterfaceCounters[], base: string[]): Metric[] {
  return interfaces.flatMap((i) =>
    NETWORK.map(([d, field]) => ({ name: d.name, timestamp: '0', metricType: d.kind, labelValues: [...base, i.name], value: { value: i[field] } })),
  );
}

async function podMetricsOf(ctx: CriContext, pod: SandboxRecord): Promise<PodSandboxMetrics> {
  const running = ctx.containers.list((c) => c.podSandboxId === pod.id && c.state === 'CONTAINER_RUNNING');
  const podBase = ['', pod.id, '', pod.id, pod.metadata.namespace, pod.metadata.name];
  const metrics = cgroupMetrics(ctx.sandboxes.cgroupStats(pod), podBase);
  const net = ctx.sandboxes.networkUsage(pod, running.map((c) => c.pid));
  if (net) metrics.push(...networkMetrics(net.interfaces, podBase));
  const containerMetrics = await mapYielding(running, async (c: ContainerRecord): Promise<ContainerMetrics> => {
    const s = await ctx.containers.cgroupStats(c);
    const base = [c.metadata.name, c.id, c.imageName, c.id, pod.metadata.namespace, pod.metadata.name];
    return { containerId: c.id, metrics: s ? cgroupMetrics(s, base) : [] };
  });
  return { podSandboxId: pod.id, metrics, containerMetrics };
}

export async function listPodSandboxMetrics(ctx: CriContext, _req: ListPodSandboxMetricsRequest__Output): Promise<ListPodSandboxMetricsResponse> {
  return { podMetrics: await mapYielding(metricsPods(ctx), (p) => podMetricsOf(ctx, p)) };
}

/** The pods ListPodSandboxMetrics and StreamPodSandboxMetrics report: ready ones. */
function metricsPods(ctx: CriContext): SandboxRecord[] {
  return ctx.sandboxes.list((p) => ctx.sandboxes.criState(p) === 'SANDBOX_READY');
}

export function streamPodSandboxMetrics(
  ctx: CriContext,
  _req: StreamPodSandboxMetricsRequest__Output,
  sink: ServerStreamSink<StreamPodSandboxMetricsResponse>,
): Promise<void> {
  return streamInBatches(sink, metricsPods(ctx), (p) => podMetricsOf(ctx, p), (podSandboxMetrics) => ({ podSandboxMetrics }));
}
