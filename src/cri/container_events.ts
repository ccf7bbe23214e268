// GetContainerEvents: a server stream of container and pod lifecycle events
// with the pod's status and its containers' statuses, as the kubelet's
// evented PLEG reads them. A pod's events carry its id as container_id (as
// containerd sends them). Any number of clients may subscribe; one that
// stops reading never holds berthd up: past a bounded backlog its events
// are dropped, counted (berth_container_events_dropped_total) and logged,
// as containerd drops them when its event channel is full.
import type { ContainerEvent } from '../container/events';
import type { ContainerEventResponse } from '../gen/runtime/v1/ContainerEventResponse';
import type { GetEventsRequest__Output } from '../gen/runtime/v1/GetEventsRequest';
import type { CriContext } from './context';
import { containerStatusOf } from './container_status';
import { podSandboxStatusOf } from './sandbox_common';

/** What a server-streaming handler writes to. */
export interface ServerStreamSink<T> {
  write(message: T): void;
  /** Messages written but not yet sent to the client. */
  readonly backlog: number;
  /** Resolves once the client has drained what was written (or left): backpressure for list streams. */
  ready(): Promise<void>;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

/** Events a slow client may have pending; past this its events are dropped. */
export const MAX_EVENT_BACKLOG = 1000;
/** A client that keeps dropping is logged again every this many drops. */
const LOG_EVERY = 1000;

export function containerEventResponse(ctx: CriContext, e: ContainerEvent): ContainerEventResponse {
  if (e.sandbox) {
    const pod = e.sandbox;
    return {
      containerId: pod.id,
      containerEventType: e.type,
      createdAt: e.createdAt,
      podSandboxStatus: podSandboxStatusOf(ctx.sandboxes, pod),
      containersStatuses: ctx.containers.list((x) => x.podSandboxId === pod.id && x.phase === 'ready').map((x) => containerStatusOf(ctx, x)),
    };
  }
  const c = e.container;
  const pod = ctx.sandboxes.find(c.podSandboxId);
  const others = ctx.containers.list((x) => x.podSandboxId === c.podSandboxId && x.id !== c.id && x.phase === 'ready');
  return {
    containerId: c.id,
    containerEventType: e.type,
    createdAt: e.createdAt,
    podSandboxStatus: pod ? podSandboxStatusOf(ctx.sandboxes, pod) : null,
    containersStatuses: [c, ...others].map((x) => containerStatusOf(ctx, x)),
  };
}

export function getContainerEvents(
  ctx: CriContext,
  _req: GetEventsRequest__Output,
  sink: ServerStreamSink<ContainerEventResponse>,
): Promise<void> {
  return new Promise((resolve) => {
    let dropped = 0;
    const unsubscribe = ctx.containers.events.subscribe((e) => {
      if (sink.backlog >= MAX_EVENT_BACKLOG) {
        ctx.metrics.eventDropped();
        if (dropped++ % LOG_EVERY === 0) {
          ctx.logger.warn('GetContainerEvents client is too slow; dropping its events', {
            backlog: sink.backlog,
            dropped,
            event: e.type,
            id: e.sandbox?.id ?? e.container?.id,
          });
        }
        return;
      }
      sink.write(containerEventResponse(ctx, e));
    });
    sink.signal.addEventListener(
      'abort',
      () => {
        unsubscribe();
        if (dropped) ctx.logger.info('GetContainerEvents client left', { dropped });
        resolve();
      },
      { once: true },
    );
  });
}
