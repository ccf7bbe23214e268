// GetContainerEvents: a server stream of container lifecycle events with the
// pod's status and its containers' statuses, as the kubelet's evented PLEG
// reads them. A client that stops reading is cut off rather than buffered
// without bound.
import type { ContainerEvent } from '../container/events';
import { resourceExhausted } from '../errors';
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

/** Events a slow client may have pending before its stream is ended. */
export const MAX_EVENT_BACKLOG = 10_000;

export function containerEventResponse(ctx: CriContext, e: ContainerEvent): ContainerEventResponse {
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
  const containers = ctx.containers;
  return new Promise((resolve, reject) => {
    const stop = (): void => {
      unsubscribe();
      sink.signal.removeEventListener('abort', stop);
    };
    const unsubscribe = containers.events.subscribe((e) => {
      if (sink.backlog > MAX_EVENT_BACKLOG) {
        stop();
        reject(resourceExhausted(`GetContainerEvents: the client fell ${MAX_EVENT_BACKLOG} events behind; reconnect`));
        return;
      }
      sink.write(containerEventResponse(ctx, e));
    });
    sink.signal.addEventListener('abort', () => {
      stop();
      resolve();
    });
  });
}
