// UpdateContainerResources and ReopenContainerLog.
import type { UpdateContainerResourcesRequest__Output } from '../gen/runtime/v1/UpdateContainerResourcesRequest';
import type { UpdateContainerResourcesResponse } from '../gen/runtime/v1/UpdateContainerResourcesResponse';
import type { ReopenContainerLogRequest__Output } from '../gen/runtime/v1/ReopenContainerLogRequest';
import type { ReopenContainerLogResponse } from '../gen/runtime/v1/ReopenContainerLogResponse';
import { invalidArgument } from '../errors';
import type { CriContext } from './context';

export async function updateContainerResources(
  ctx: CriContext,
  req: UpdateContainerResourcesRequest__Output,
): Promise<UpdateContainerResourcesResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  await containers.updateResources(req.containerId, req.linux);
  return {};
}

export async function reopenContainerLog(ctx: CriContext, req: ReopenContainerLogRequest__Output): Promise<ReopenContainerLogResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  await containers.reopenLog(req.containerId);
  return {};
}
