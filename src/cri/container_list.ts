// ListContainers and StreamContainers (the same selection and shape; the stream in batches).
import type { ContainerRecord } from '../container/record';
import type { ContainerService } from '../container/service';
import type { Container } from '../gen/runtime/v1/Container';
import type { ListContainersRequest__Output } from '../gen/runtime/v1/ListContainersRequest';
import type { StreamContainersRequest__Output } from '../gen/runtime/v1/StreamContainersRequest';
import type { StreamContainersResponse } from '../gen/runtime/v1/StreamContainersResponse';
import { loadCri } from '../proto';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { containerOf, imageView } from './container_view';
import { EncodedReply, ItemEncodings, ListReplyCache } from './encoded_reply';
import { containerFilter, wholeListSelection } from './filters';
import { streamInBatches } from './list_stream';

// A container's Container changes only with its state and how its image is
// named (a tag can move); ids, metadata, labels and annotations are fixed.
const containerEncodings = new ItemEncodings<ContainerRecord, Container>((item) =>
  loadCri().runtime.v1.RuntimeService.service.ListContainers.responseSerialize({ containers: [item] }),
);

// The whole reply changes only with the container records and the image names.
const containerLists = new ListReplyCache<ContainerService>();

export async function listContainers(ctx: CriContext, req: ListContainersRequest__Output): Promise<EncodedReply> {
  const build = (): Buffer[] =>
    ctx.containers.list(containerFilter(req.filter)).map((c) => {
      const view = imageView(c, ctx.images);
      return containerEncodings.encode(c, `${c.state}|${view.image}|${view.imageRef}`, () => containerOf(c, ctx.images));
    });
  const selection = wholeListSelection(req.filter);
  if (selection === undefined) return new EncodedReply(build());
  return containerLists.reply(ctx.containers, selection, [ctx.containers.store.generation, ctx.images.store.generation], build);
}

export function streamContainers(
  ctx: CriContext,
  req: StreamContainersRequest__Output,
  sink: ServerStreamSink<StreamContainersResponse>,
): Promise<void> {
  const list = ctx.containers.list(containerFilter(req.filter));
  return streamInBatches(sink, list, (c) => containerOf(c, ctx.images), (containers) => ({ containers }));
}
