// RunPodSandbox: check the request, delegate to the sandbox service.
import type { RunPodSandboxRequest__Output } from '../gen/runtime/v1/RunPodSandboxRequest';
import type { RunPodSandboxResponse } from '../gen/runtime/v1/RunPodSandboxResponse';
import type { CriContext } from './context';
import { podSpecOf } from './validate_pod';

export async function runPodSandbox(ctx: CriContext, req: RunPodSandboxRequest__Output): Promise<RunPodSandboxResponse> {
  const sandboxes = ctx.sandboxes;
  const podSandboxId = await sandboxes.run(podSpecOf(req.config, req.runtimeHandler, (parent, uid) => sandboxes.cgroupDriver.name(parent, uid)));
  return { podSandboxId };
}
