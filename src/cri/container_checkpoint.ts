// CheckpointContainer: CRIU through the runtime; FAILED_PRECONDITION (never
// UNIMPLEMENTED) where CRIU cannot work on this node, saying why.
import { invalidArgument } from '../errors';
import type { CheckpointContainerRequest__Output } from '../gen/runtime/v1/CheckpointContainerRequest';
import type { CheckpointContainerResponse } from '../gen/runtime/v1/CheckpointContainerResponse';
import type { CriContext } from './context';

export async function checkpointContainer(
  ctx: CriContext,
  req: CheckpointContainerRequest__Output,
): Promise<CheckpointContainerResponse> {
  if (!req.containerId) throw invalidArgument('CheckpointContainer: container_id is required');
  await ctx.containers.checkpoint(req.containerId, req.location);
  return {};
}
