// CreateContainer: validates the request and hands it to the container service.
import type { CreateContainerRequest__Output } from '../gen/runtime/v1/CreateContainerRequest';
import type { CreateContainerResponse } from '../gen/runtime/v1/CreateContainerResponse';
import type { CriContext } from './context';
import { requireService } from './require';

export async function createContainer(ctx: CriContext, req: CreateContainerRequest__Output): Promise<CreateContainerResponse> {
  const containers = requireService(ctx.containers, 'CreateContainer');
  const id = await containers.create(req.podSandboxId, req.config, req.sandboxConfig);
  return { containerId: id };
}
