// ListContainers.
import type { ListContainersRequest__Output } from '../gen/runtime/v1/ListContainersRequest';
import type { ListContainersResponse } from '../gen/runtime/v1/ListContainersResponse';
import type { CriContext } from './context';
import { imageView } from './container_view';
import { containerFilter } from './container_filter';

export async function listContainers(ctx: CriContext, req: ListContainersRequest__Output): Promise<ListContainersResponse> {
  const containers = ctx.containers;
  const list = containers.list(containerFilter(req.filter));
  return {
    containers: list.map((c) => {
      const view = imageView(c, ctx.images);
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
    }),
  };
}
