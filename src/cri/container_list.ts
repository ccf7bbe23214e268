// ListContainers.
import type { ContainerRecord } from '../container/record';
import type { Container } from '../gen/runtime/v1/Container';
import type { ListContainersRequest__Output } from '../gen/runtime/v1/ListContainersRequest';
import { loadCri } from '../proto';
import type { CriContext } from './context';
import { containerOf, imageView } from './container_view';
import { EncodedReply, ItemEncodings } from './encoded_reply';
import { containerFilter } from './filters';

// A container's Container changes only with its state and how its image is
// named (a tag can move); ids, metadata, labels and annotations are fixed.
const containerEncodings = new ItemEncodings<ContainerRecord, Container>((item) =>
  loadCri().runtime.v1.RuntimeService.service.ListContainers.responseSerialize({ containers: [item] }),
);

export async function listContainers(ctx: CriContext, req: ListContainersRequest__Output): Promise<EncodedReply> {
  const parts = ctx.containers.list(containerFilter(req.filter)).map((c) => {
    const view = imageView(c, ctx.images);
    return containerEncodings.encode(c, `${c.state}|${view.image}|${view.imageRef}`, () => containerOf(c, ctx.images));
  });
  return new EncodedReply(parts);
}
