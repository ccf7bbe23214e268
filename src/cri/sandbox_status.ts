// PodSandboxStatus, ListPodSandbox and StreamPodSandboxes.
import type { PodSandboxStatusRequest__Output } from '../gen/runtime/v1/PodSandboxStatusRequest';
import type { PodSandboxStatusResponse } from '../gen/runtime/v1/PodSandboxStatusResponse';
import type { ListPodSandboxRequest__Output } from '../gen/runtime/v1/ListPodSandboxRequest';
import type { ListPodSandboxResponse } from '../gen/runtime/v1/ListPodSandboxResponse';
import { invalidArgument } from '../errors';
import type { StreamPodSandboxesRequest__Output } from '../gen/runtime/v1/StreamPodSandboxesRequest';
import type { StreamPodSandboxesResponse } from '../gen/runtime/v1/StreamPodSandboxesResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { podFilter } from './filters';
import { streamInBatches } from './list_stream';
import { podSandboxOf, podSandboxStatusOf } from './sandbox_common';
import { nowNs } from '../util/time';

export async function podSandboxStatus(
  ctx: CriContext,
  req: PodSandboxStatusRequest__Output,
): Promise<PodSandboxStatusResponse> {
  if (!req.podSandboxId) throw invalidArgument('PodSandboxStatus: pod_sandbox_id is required');
  const sandboxes = ctx.sandboxes;
  const rec = sandboxes.get(req.podSandboxId);
  const res: PodSandboxStatusResponse = {
    status: podSandboxStatusOf(sandboxes, rec),
    info: {},
    containersStatuses: [],
    timestamp: nowNs(),
  };
  if (req.verbose) {
    // Like containerd, one JSON document under "info" with what berth set up for the pod.
    res.info = {
      info: JSON.stringify({
        pid: rec.pausePid ?? 0,
        state: rec.state,
        runtimeHandler: rec.runtimeHandler,
        namespaces: rec.nsPaths,
        cgroupParent: rec.cgroup.path,
        shm: rec.shmPath ?? '',
        hostname: rec.hostname,
        resolvConf: rec.resolvConfFile,
        hosts: rec.hostsFile,
        hostnameFile: rec.hostnameFile,
        networkAttached: rec.networkAttached,
        resources: rec.resources ?? null,
        config: rec.config,
      }),
    };
  }
  return res;
}

export async function listPodSandbox(ctx: CriContext, req: ListPodSandboxRequest__Output): Promise<ListPodSandboxResponse> {
  const sandboxes = ctx.sandboxes;
  return { items: sandboxes.list(podFilter(sandboxes, req.filter)).map((rec) => podSandboxOf(sandboxes, rec)) };
}

export function streamPodSandboxes(
  ctx: CriContext,
  req: StreamPodSandboxesRequest__Output,
  sink: ServerStreamSink<StreamPodSandboxesResponse>,
): Promise<void> {
  const sandboxes = ctx.sandboxes;
  const list = sandboxes.list(podFilter(sandboxes, req.filter));
  return streamInBatches(sink, list, (rec) => podSandboxOf(sandboxes, rec), (podSandboxes) => ({ podSandboxes }));
}
