// ImageStatus: an image by id, id prefix, name:tag or name@digest. A missing
// image is an empty response, not NOT_FOUND (the kubelet relies on that).
// Verbose adds info["info"]: the chain ID and the full image config, as
// containerd reports them.
import type { ImageStatusRequest__Output } from '../gen/runtime/v1/ImageStatusRequest';
import type { ImageStatusResponse } from '../gen/runtime/v1/ImageStatusResponse';
import type { CriContext } from './context';
import { requestedImage, toCriImage } from './image_common';

export async function imageStatus(ctx: CriContext, req: ImageStatusRequest__Output): Promise<ImageStatusResponse> {
  const ref = requestedImage(req.image, 'ImageStatus');
  const images = ctx.images;
  const img = images.lookup(ref);
  if (!img) return { image: null, info: {} };
  const info: Record<string, string> = {};
  if (req.verbose) {
    info.info = JSON.stringify({
      chainID: img.chainIds[img.chainIds.length - 1] ?? '',
      imageSpec: await images.imageSpec(img),
    });
  }
  return { image: toCriImage(images, img), info };
}
