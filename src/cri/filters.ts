// The CRI's list filters as predicates over records: containers
// (ListContainers, ListContainerStats) and pods (ListPodSandbox,
// ListPodSandboxStats). Ids match by prefix, as crictl's short ids expect;
// labels by equality.
import type { ContainerRecord } from '../container/record';
import type { ContainerStateValue } from '../gen/runtime/v1/ContainerStateValue';
import type { PodSandboxStateValue } from '../gen/runtime/v1/PodSandboxStateValue';
import type { SandboxRecord } from '../sandbox/record';
import type { SandboxService } from '../sandbox/service';
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

export interface PodFilterFields {
  id?: string;
  state?: PodSandboxStateValue | null;
  labelSelector?: Record<string, string>;
}

export function podFilter(sandboxes: Pick<SandboxService, 'criState'>, f: PodFilterFields | null | undefined): (rec: SandboxRecord) => boolean {
  const id = f?.id ?? '';
  const state = f?.state?.state;
  const selector = f?.labelSelector;
  return (r) => (!id || r.id.startsWith(id)) && (!state || sandboxes.criState(r) === state) && labelsMatch(r.config.labels, selector);
}

/**
 * The selection of a list filter when it is one a reply can be kept for
 * (every record, or every record in one state), else undefined: ids and
 * label selectors make too many selections to keep.
 */
export function wholeListSelection(
  f: { id?: string; podSandboxId?: string; state?: { state?: string } | null; labelSelector?: Record<string, string> } | null | undefined,
): string | undefined {
  if (!f) return 'all';
  if (f.id || f.podSandboxId) return undefined;
  for (const _k in f.labelSelector ?? {}) return undefined;
  const state = f.state?.state;
  return state ? `state ${state}` : 'all';
}
