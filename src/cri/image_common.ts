// Shared by the image RPCs: the CRI view of an image record, and the
// reference a request names.
import type { Image } from '../gen/runtime/v1/Image';
import type { ImageSpec__Output } from '../gen/runtime/v1/ImageSpec';
import { invalidArgument } from '../errors';
import type { ImageService } from '../image/service';
import type { ImageRecord } from '../image/store';

/** The image a request's ImageSpec names; invalidArgument when there is none. */
export function requestedImage(spec: ImageSpec__Output | null | undefined, rpc: string): string {
  const image = spec?.image?.trim() ?? '';
  if (!image) throw invalidArgument(`${rpc}: image is required (ImageSpec.image is empty)`);
  return image;
}

/** containerd's reading of the config's User: numeric -> uid, else username (group part ignored). */
export function userOf(user: string): { uid?: number; username?: string } {
  if (!user) return {};
  const name = user.split(':')[0];
  if (/^\d+$/.test(name)) return { uid: Number(name) };
  return name ? { username: name } : {};
}

export function toCriImage(images: ImageService, img: ImageRecord): Image {
  const u = userOf(img.config.user);
  return {
    id: img.id,
    repoTags: img.repoTags,
    repoDigests: img.repoDigests,
    size: String(img.size),
    uid: u.uid !== undefined ? { value: String(u.uid) } : null,
    username: u.username ?? '',
    pinned: images.isPinned(img),
  };
}
