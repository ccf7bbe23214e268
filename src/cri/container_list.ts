// ListContainers and StreamContainers (the same selection and shape, in batches).
import type { ListContainersRequest__Output } from '../gen/runtime/v1/ListContainersRequest';
import type { ListContainersResponse } from '../gen/runtime/v1/ListContainersResponse';
import type { StreamContainersRequest__Output } from '../gen/runtime/v1/StreamContainersRequest';
import type { StreamContainersResponse } from '../gen/runtime/v1/StreamContainersResponse';
import type { ServerStreamSink } from './container_events';
import type { CriContext } from './context';
import { containerOf } from './container_view';
import { containerFilter } from './filters';
import { streamInBatches } from './list_stream';

export async function listContainers(ctx: CriContext, req: ListContainersRequest__Output): Promise<ListContainersResponse> {
  const containers = ctx.containers;
  const list = containers.list(containerFilter(req.filter));
  return { containers: list.map((c) => containerOf(c, ctx.images)) };
}

export function streamContainers(
  ctx: CriContext,
  req: StreamContainersRequest__Output,
  sink: ServerStreamSink<StreamContainersResponse>,
): Promise<void> {
  const list = ctx.containers.list(containerFilter(req.filter));
  return streamInBatches(sink, list, (c) => containerOf(c, ctx.images), (containers) => ({ containers }));
}
