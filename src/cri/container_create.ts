// CreateContainer: validates the request and hands it to the container service.
import type { CreateContainerRequest__Output } from '../gen/runtime/v1/CreateContainerRequest';
import type { CreateContainerResponse } from '../gen/runtime/v1/CreateContainerResponse';
import * as path from 'node:path';
import { invalidArgument } from '../errors';
import type { CriContext } from './context';

/** log_path is relative to the pod's log_directory and must stay inside it. */
function validateLogPath(logPath: string): void {
  if (path.normalize(logPath).split('/').includes('..')) {
    throw invalidArgument(`config.log_path "${logPath}" must stay inside the pod's log_directory (no "..")`);
  }
}

export async function createContainer(ctx: CriContext, req: CreateContainerRequest__Output): Promise<CreateContainerResponse> {
  const containers = ctx.containers;
  if (!req.podSandboxId) throw invalidArgument('pod_sandbox_id is required');
  const config = req.config;
  if (!config) throw invalidArgument('config is required');
  if (!config.metadata?.name) throw invalidArgument('config.metadata.name is required');
  if (!config.image?.image) throw invalidArgument('config.image.image is required');
  if (config.logPath) validateLogPath(config.logPath);
  const id = await containers.create(req.podSandboxId, config, req.sandboxConfig);
  return { containerId: id };
}
