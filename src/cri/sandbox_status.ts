// PodSandboxStatus, ListPodSandbox and StreamPodSandboxes.
import type { PodSandboxStatusRequest__Output } from '../gen/runtime/v1/PodSandboxStatusRequest';
import type { PodSandboxStatusResponse } from '../gen/runtime/v1/PodSandboxStatusResponse';
import type { ListPodSandboxRequest__Output } from '../gen/runtime/v1/ListPodSandboxRequest';
import type { PodSandbox } from '../gen/runtime/v1/PodSandbox';
import { loadCri } from '../proto';
import type { SandboxRecord } from '../sandbox/record';
import type { SandboxService } from '../sandbox/service';
import { EncodedReply, ItemEncodings, ListReplyCache } from './encoded_reply';
import { invalidArgument } from '../errors';
import type { StreamPodSandboxesRequest__Output } from '../gen/runtime/v1/StreamPodSandboxesRequest';
import type { StreamPodSandboxesResponse } from '../gen/runtime/v1/StreamPodSandboxesResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { podFilter, wholeListSelection } from './filters';
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
  await sandboxes.checkPause(rec);
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
        cgroupParent: rec.cgroup.slice ?? rec.cgroup.path,
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

// A pod's PodSandbox changes only with its CRI state; the rest is fixed at creation.
const podEncodings = new ItemEncodings<SandboxRecord, PodSandbox>((item) =>
  loadCri().runtime.v1.RuntimeService.service.ListPodSandbox.responseSerialize({ items: [item] }),
);

// The whole reply changes only with the pod records and what is known of their pauses.
const podLists = new ListReplyCache<SandboxService>();

export async function listPodSandbox(ctx: CriContext, req: ListPodSandboxRequest__Output): Promise<EncodedReply> {
  const sandboxes = ctx.sandboxes;
  const build = (): Buffer[] =>
    sandboxes.list(podFilter(sandboxes, req.filter)).map((rec) => {
      const state = sandboxes.criState(rec);
      return podEncodings.encode(rec, state, () => podSandboxOf(sandboxes, rec));
    });
  const selection = wholeListSelection(req.filter);
  if (selection === undefined) return new EncodedReply(build());
  return podLists.reply(sandboxes, selection, sandboxes.listGeneration(), build);
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
