// PullImage: pulls by any reference form and answers with the image id
// (the config digest), as containerd does.
import type { PullImageRequest__Output } from '../gen/runtime/v1/PullImageRequest';
import type { PullImageResponse } from '../gen/runtime/v1/PullImageResponse';
import { parseReference } from '../oci/reference';
import type { CriContext } from './context';
import { requestedImage } from './image_common';

export async function pullImage(ctx: CriContext, req: PullImageRequest__Output): Promise<PullImageResponse> {
  const image = requestedImage(req.image, 'PullImage');
  // Refused here, before any pull state: INVALID_ARGUMENT naming the reference.
  parseReference(image);
  const images = ctx.images;
  const auth = req.auth ?? undefined;
  const record = await images.pull(image, auth);
  return { imageRef: record.id };
}
