// How a container record is shown over CRI: shared by ListContainers and
// ContainerStatus so the two always agree.
import type { ContainerRecord } from '../container/record';
import type { ImageService } from '../image/service';

export interface ContainerImageView {
  /** ImageSpec.image: the image's first tag when known, else what the user asked for. */
  image: string;
  /** image_ref: the repo digest the kubelet records as the pod's imageID. */
  imageRef: string;
  imageId: string;
}

export function imageView(rec: ContainerRecord, images: ImageService | undefined): ContainerImageView {
  const img = images?.lookup(rec.imageId);
  return {
    image: img?.repoTags[0] ?? rec.imageName,
    imageRef: img?.repoDigests[0] ?? rec.imageId,
    imageId: rec.imageId,
  };
}
