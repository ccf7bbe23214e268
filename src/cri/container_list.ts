// ListContainers.
import type { ListContainersRequest__Output } from '../gen/runtime/v1/ListContainersRequest';
import type { ListContainersResponse } from '../gen/runtime/v1/ListContainersResponse';
import type { CriContext } from './context';
import { containerOf } from './container_view';
import { containerFilter } from './filters';

export async function listContainers(ctx: CriContext, req: ListContainersRequest__Output): Promise<ListContainersResponse> {
  const containers = ctx.containers;
  const list = containers.list(containerFilter(req.filter));
  return { containers: list.map((c) => containerOf(c, ctx.images)) };
}
