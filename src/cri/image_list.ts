// ListImages and StreamImages: every image, or with a filter only the one its
// reference names.
import type { ListImagesRequest__Output } from '../gen/runtime/v1/ListImagesRequest';
import type { ListImagesResponse } from '../gen/runtime/v1/ListImagesResponse';
import type { ImageFilter__Output } from '../gen/runtime/v1/ImageFilter';
import type { StreamImagesRequest__Output } from '../gen/runtime/v1/StreamImagesRequest';
import type { StreamImagesResponse } from '../gen/runtime/v1/StreamImagesResponse';
import type { ImageRecord } from '../image/store';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { toCriImage } from './image_common';
import { streamInBatches } from './list_stream';

export async function listImages(ctx: CriContext, req: ListImagesRequest__Output): Promise<ListImagesResponse> {
  return { images: selectedImages(ctx, req.filter).map((img) => toCriImage(ctx.images, img)) };
}

function selectedImages(ctx: CriContext, filter: ImageFilter__Output | null): ImageRecord[] {
  const images = ctx.images;
  const wanted = filter?.image?.image?.trim();
  if (wanted) {
    const img = images.lookup(wanted);
    return img ? [img] : [];
  }
  // By code point, not localeCompare (ICU's collator would map ~2 MiB of its data into berthd); the keys are digits and hex.
  const order = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return images.list().sort((a, b) => order(a.createdAt, b.createdAt) || order(a.id, b.id));
}

export function streamImages(ctx: CriContext, req: StreamImagesRequest__Output, sink: ServerStreamSink<StreamImagesResponse>): Promise<void> {
  return streamInBatches(sink, selectedImages(ctx, req.filter), (img) => toCriImage(ctx.images, img), (images) => ({ images }));
}
