// PullImage: pulls by any reference form and answers with the image id
// (the config digest), as containerd does.
import type { PullImageRequest__Output } from '../gen/runtime/v1/PullImageRequest';
import type { PullImageResponse } from '../gen/runtime/v1/PullImageResponse';
import { parseReference } from '../oci/reference';
import type { CallInfo, CriContext } from './context';
import { requestedImage } from './image_common';

export async function pullImage(ctx: CriContext, req: PullImageRequest__Output, call: CallInfo): Promise<PullImageResponse> {
  const image = requestedImage(req.image, 'PullImage');
  // Refused here, before any pull state: INVALID_ARGUMENT naming the reference.
  parseReference(image);
  const images = ctx.images;
  const auth = req.auth ?? undefined;
  // A client that goes away (cancel, deadline) takes its transfers with it; others sharing them go on.
  const record = await images.pull(image, auth, undefined, undefined, call.signal);
  return { imageRef: record.id };
}
