// UpdatePodSandboxResources: pod-level resources and overhead onto the pod
// cgroup (src/sandbox/resources.ts); shown in verbose PodSandboxStatus.
import { invalidArgument } from '../errors';
import type { UpdatePodSandboxResourcesRequest__Output } from '../gen/runtime/v1/UpdatePodSandboxResourcesRequest';
import type { UpdatePodSandboxResourcesResponse } from '../gen/runtime/v1/UpdatePodSandboxResourcesResponse';
import type { CriContext } from './context';

export async function updatePodSandboxResources(
  ctx: CriContext,
  req: UpdatePodSandboxResourcesRequest__Output,
): Promise<UpdatePodSandboxResourcesResponse> {
  if (!req.podSandboxId) throw invalidArgument('UpdatePodSandboxResources: pod_sandbox_id is required');
  await ctx.sandboxes.updateResources(req.podSandboxId, { resources: req.resources, overhead: req.overhead });
  return {};
}
