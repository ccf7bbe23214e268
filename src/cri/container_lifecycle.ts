// StartContainer, StopContainer and RemoveContainer.
import type { StartContainerRequest__Output } from '../gen/runtime/v1/StartContainerRequest';
import type { StartContainerResponse } from '../gen/runtime/v1/StartContainerResponse';
import type { StopContainerRequest__Output } from '../gen/runtime/v1/StopContainerRequest';
import type { StopContainerResponse } from '../gen/runtime/v1/StopContainerResponse';
import type { RemoveContainerRequest__Output } from '../gen/runtime/v1/RemoveContainerRequest';
import type { RemoveContainerResponse } from '../gen/runtime/v1/RemoveContainerResponse';
import { invalidArgument } from '../errors';
import type { CallInfo, CriContext } from './context';

export async function startContainer(ctx: CriContext, req: StartContainerRequest__Output): Promise<StartContainerResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  await containers.start(req.containerId);
  return {};
}

export async function stopContainer(ctx: CriContext, req: StopContainerRequest__Output, call: CallInfo): Promise<StopContainerResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  const timeout = Number(req.timeout);
  if (!Number.isFinite(timeout) || timeout < 0) throw invalidArgument(`timeout must be >= 0 seconds, got ${req.timeout}`);
  await containers.stop(req.containerId, timeout, call.signal);
  return {};
}

export async function removeContainer(ctx: CriContext, req: RemoveContainerRequest__Output): Promise<RemoveContainerResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  await containers.remove(req.containerId);
  return {};
}
