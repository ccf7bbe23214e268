// RunPodSandbox: validate, delegate to the sandbox service.
import type { RunPodSandboxRequest__Output } from '../gen/runtime/v1/RunPodSandboxRequest';
import type { RunPodSandboxResponse } from '../gen/runtime/v1/RunPodSandboxResponse';
import type { CriContext } from './context';
import { sandboxesOf } from './sandbox_common';

export async function runPodSandbox(ctx: CriContext, req: RunPodSandboxRequest__Output): Promise<RunPodSandboxResponse> {
  const podSandboxId = await sandboxesOf(ctx).run(req.config, req.runtimeHandler);
  return { podSandboxId };
}
