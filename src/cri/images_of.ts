// The ImageService of a context. There is exactly one per daemon: a second
// snapshotter on the same root would disagree with the first about what exists.
import type { ImageService } from '../image/service';
import type { CriContext } from './context';
import { requireService } from './require';

export function imagesOf(ctx: CriContext): Promise<ImageService> {
  return Promise.resolve(requireService(ctx.images, 'ImageService'));
}
