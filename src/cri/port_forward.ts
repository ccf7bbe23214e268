// PortForward: validates the request and returns a single-use streaming URL
// for forwarding TCP connections into the pod's network namespace.
import { failedPrecondition, invalidArgument } from '../errors';
import type { PortForwardRequest__Output } from '../gen/runtime/v1/PortForwardRequest';
import type { PortForwardResponse } from '../gen/runtime/v1/PortForwardResponse';
import type { CriContext } from './context';

export async function portForward(ctx: CriContext, req: PortForwardRequest__Output): Promise<PortForwardResponse> {
  if (!req.podSandboxId) throw invalidArgument('PortForward: pod_sandbox_id is required');
  for (const p of req.port) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalidArgument(`PortForward: invalid port ${p}`);
  }
  const pod = ctx.sandboxes.get(req.podSandboxId);
  if (pod.state !== 'ready') throw failedPrecondition(`PortForward: pod sandbox ${pod.id} is not ready`);
  return { url: ctx.streaming.getPortForwardUrl(req) };
}
