// ListImages: every image, or with a filter only the one its reference names.
import type { ListImagesRequest__Output } from '../gen/runtime/v1/ListImagesRequest';
import type { ListImagesResponse } from '../gen/runtime/v1/ListImagesResponse';
import type { CriContext } from './context';
import { toCriImage } from './image_common';

export async function listImages(ctx: CriContext, req: ListImagesRequest__Output): Promise<ListImagesResponse> {
  const images = ctx.images;
  const wanted = req.filter?.image?.image?.trim();
  if (wanted) {
    const img = images.lookup(wanted);
    return { images: img ? [toCriImage(images, img)] : [] };
  }
  const all = images.list().sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  return { images: all.map((img) => toCriImage(images, img)) };
}
