// RemoveImage: by any reference; idempotent. Removing one of several tags
// only untags; otherwise the image and whatever only it used are deleted.
import type { RemoveImageRequest__Output } from '../gen/runtime/v1/RemoveImageRequest';
import type { RemoveImageResponse } from '../gen/runtime/v1/RemoveImageResponse';
import type { CriContext } from './context';
import { requestedImage } from './image_common';

export async function removeImage(ctx: CriContext, req: RemoveImageRequest__Output): Promise<RemoveImageResponse> {
  const ref = requestedImage(req.image, 'RemoveImage');
  const images = ctx.images;
  await images.remove(ref);
  return {};
}
