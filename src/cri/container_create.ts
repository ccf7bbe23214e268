// CreateContainer: validates the request and hands it to the container service.
import type { CreateContainerRequest__Output } from '../gen/runtime/v1/CreateContainerRequest';
import type { CreateContainerResponse } from '../gen/runtime/v1/CreateContainerResponse';
import * as path from 'node:path';
import { invalidArgument } from '../errors';
import type { CriContext } from './context';

/**
 * log_path is relative to the pod's log_directory and must stay inside it:
 * the shim, as root, creates and appends to it, so an absolute path or one
 * that climbs out with ".." would let a CreateContainer caller write any file
 * on the node.
 */
function validateLogPath(logPath: string): void {
  if (logPath.includes('\0')) throw invalidArgument('config.log_path contains a NUL byte');
  if (path.posix.isAbsolute(logPath)) {
    throw invalidArgument(`config.log_path "${logPath}" must be relative to the pod's log_directory`);
  }
  const normal = path.posix.normalize(logPath);
  if (normal.split('/').includes('..') || normal === '.' || normal.endsWith('/')) {
    throw invalidArgument(`config.log_path "${logPath}" must stay inside the pod's log_directory (no "..") and name a file`);
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
