// StopPodSandbox and RemovePodSandbox: both idempotent (a missing pod is success).
import type { StopPodSandboxRequest__Output } from '../gen/runtime/v1/StopPodSandboxRequest';
import type { StopPodSandboxResponse } from '../gen/runtime/v1/StopPodSandboxResponse';
import type { RemovePodSandboxRequest__Output } from '../gen/runtime/v1/RemovePodSandboxRequest';
import type { RemovePodSandboxResponse } from '../gen/runtime/v1/RemovePodSandboxResponse';
import type { CriContext } from './context';
import { requirePodSandboxId } from './validate_pod';

export async function stopPodSandbox(ctx: CriContext, req: StopPodSandboxRequest__Output): Promise<StopPodSandboxResponse> {
  await ctx.sandboxes.stop(requirePodSandboxId('StopPodSandbox', req.podSandboxId));
  return {};
}

export async function removePodSandbox(
  ctx: CriContext,
  req: RemovePodSandboxRequest__Output,
): Promise<RemovePodSandboxResponse> {
  await ctx.sandboxes.remove(requirePodSandboxId('RemovePodSandbox', req.podSandboxId));
  return {};
}
