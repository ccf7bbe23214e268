// UpdateRuntimeConfig: the kubelet tells the runtime the node's pod CIDR,
// which CNI plugins declaring the ipRanges capability allocate from.
import type { UpdateRuntimeConfigRequest__Output } from '../gen/runtime/v1/UpdateRuntimeConfigRequest';
import type { UpdateRuntimeConfigResponse } from '../gen/runtime/v1/UpdateRuntimeConfigResponse';
import type { CriContext } from './context';

export async function updateRuntimeConfig(
  ctx: CriContext,
  req: UpdateRuntimeConfigRequest__Output,
): Promise<UpdateRuntimeConfigResponse> {
  const podCidr = req.runtimeConfig?.networkConfig?.podCidr;
  // An absent network config means "no change", not "clear the CIDR".
  if (podCidr !== undefined && podCidr !== null) ctx.network.setPodCidr(podCidr);
  return {};
}
