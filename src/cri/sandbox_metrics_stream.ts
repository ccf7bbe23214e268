// StreamPodSandboxMetrics. Pod metrics (ListPodSandboxMetrics) are built on
// branch wt-metrics; until they are, berth has no metrics to report and the
// stream ends at once, empty, as the stream twin of an empty list.
import type { StreamPodSandboxMetricsRequest__Output } from '../gen/runtime/v1/StreamPodSandboxMetricsRequest';
import type { StreamPodSandboxMetricsResponse } from '../gen/runtime/v1/StreamPodSandboxMetricsResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';

export async function streamPodSandboxMetrics(
  _ctx: CriContext,
  _req: StreamPodSandboxMetricsRequest__Output,
  _sink: ServerStreamSink<StreamPodSandboxMetricsResponse>,
): Promise<void> {
  // Nothing to send: the stream closes with EOF and no list.
}
