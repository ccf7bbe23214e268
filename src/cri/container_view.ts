// How a container record is shown over CRI: the fields ListContainers and
// ContainerStatus share, built in one place so the two always agree.
import type { ContainerRecord } from '../container/record';
import type { Container } from '../gen/runtime/v1/Container';
import type { ImageService } from '../image/service';

export interface ContainerImageView {
  /** ImageSpec.image: the image's first tag when known, else what the user asked for. */
  image: string;
  /** image_ref: the repo digest the kubelet records as the pod's imageID. */
  imageRef: string;
  imageId: string;
}

export function imageView(rec: ContainerRecord, images: ImageService): ContainerImageView {
  const img = images.lookup(rec.imageId);
  return {
    image: img?.repoTags[0] ?? rec.imageName,
    imageRef: img?.repoDigests[0] ?? rec.imageId,
    imageId: rec.imageId,
  };
}

/** The CRI Container of a record (ListContainers), which ContainerStatus extends. */
export function containerOf(c: ContainerRecord, images: ImageService): Container & { id: string } {
  const view = imageView(c, images);
  return {
    id: c.id,
    podSandboxId: c.podSandboxId,
    metadata: c.metadata,
    image: { image: view.image, annotations: c.config.image?.annotations ?? {}, userSpecifiedImage: c.imageName },
    imageRef: view.imageRef,
    imageId: view.imageId,
    state: c.state,
    createdAt: c.createdAt,
    labels: c.config.labels ?? {},
    annotations: c.config.annotations ?? {},
  };
}
