// The CRI's container filters (ListContainers, ListContainerStats) as a
// predicate over container records: id and pod id match by prefix, as
// crictl's short ids expect; labels by equality.
import type { ContainerRecord } from '../container/record';
import type { ContainerStateValue } from '../gen/runtime/v1/ContainerStateValue';
import { labelsMatch } from '../store/record_store';

export interface ContainerFilterFields {
  id?: string;
  podSandboxId?: string;
  state?: ContainerStateValue | null;
  labelSelector?: Record<string, string>;
}

export function containerFilter(f: ContainerFilterFields | null | undefined): (rec: ContainerRecord) => boolean {
  const id = f?.id ?? '';
  const pod = f?.podSandboxId ?? '';
  const state = f?.state?.state;
  const selector = f?.labelSelector;
  return (c) =>
    (!id || c.id.startsWith(id)) &&
    (!pod || c.podSandboxId.startsWith(pod)) &&
    (!state || c.state === state) &&
    labelsMatch(c.config.labels, selector);
}
