// ContainerStatus: state, times, exit, image, mounts, log path, resources;
// verbose adds info["info"] (pid, the OCI spec, ...) as containerd does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerStatusRequest__Output } from '../gen/runtime/v1/ContainerStatusRequest';
import type { ContainerStatusResponse } from '../gen/runtime/v1/ContainerStatusResponse';
import { invalidArgument } from '../errors';
import type { CriContext } from './context';
import type { ContainerRecord } from '../container/record';
import type { ContainerStatus } from '../gen/runtime/v1/ContainerStatus';
import { containerOf, imageView } from './container_view';
import { signalEnumOf } from '../runtime/spec/stop_signal';
import { loadCri } from '../proto';
import { EncodedReply, ItemEncodings } from './encoded_reply';

// The kubelet's log manager asks for every running container's status every
// 10 s. A record changes only through its store's update(), which bumps its
// revision; the image's name can move with a tag. Both key the cached reply.
const statusEncodings = new ItemEncodings<ContainerRecord, ContainerStatusResponse>((res) =>
  loadCri().runtime.v1.RuntimeService.service.ContainerStatus.responseSerialize(res),
);

/** The CRI view of a container record (shared with GetContainerEvents). */
export function containerStatusOf(ctx: CriContext, c: ContainerRecord): ContainerStatus {
  // ContainerStatus has no pod_sandbox_id.
  const { podSandboxId: _pod, ...base } = containerOf(c, ctx.images);
  return {
    ...base,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
    exitCode: c.exitCode,
    reason: c.reason,
    message: c.message,
    mounts: c.config.mounts ?? [],
    logPath: c.logPath,
    resources: c.resources ? { linux: c.resources } : null,
    stopSignal: signalEnumOf(c.stopSignal),
    // As containerd: the primary group counts among the supplemental ones.
    user: c.user
      ? {
          linux: {
            uid: String(c.user.uid),
            gid: String(c.user.gid),
            supplementalGroups: [...new Set([c.user.gid, ...c.user.additionalGids])].map(String),
          },
        }
      : null,
  };
}

export async function containerStatus(
  ctx: CriContext,
  req: ContainerStatusRequest__Output,
): Promise<ContainerStatusResponse | EncodedReply> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  const c = await containers.status(req.containerId);
  if (!req.verbose) {
    const view = imageView(c, ctx.images);
    const key = `${containers.store.revision(c)}|${view.image}|${view.imageRef}`;
    return new EncodedReply([statusEncodings.encode(c, key, () => ({ status: containerStatusOf(ctx, c), info: {} }))]);
  }
  const res: ContainerStatusResponse = { status: containerStatusOf(ctx, c), info: {} };
  if (req.verbose) {
    let runtimeSpec: unknown = null;
    try {
      runtimeSpec = JSON.parse(fs.readFileSync(path.join(c.bundleDir, 'config.json'), 'utf8'));
    } catch {
      runtimeSpec = null;
    }
    res.info = {
      info: JSON.stringify({
        sandboxID: c.podSandboxId,
        pid: c.state === 'CONTAINER_RUNNING' || c.state === 'CONTAINER_CREATED' ? c.pid : 0,
        removing: c.phase === 'removing',
        snapshotKey: c.snapshotKey,
        snapshotter: 'overlayfs',
        runtimeType: c.runtimeHandler,
        config: c.config,
        runtimeSpec,
      }),
    };
  }
  return res;
}
