// Container lifecycle events for GetContainerEvents (the kubelet's evented
// PLEG): created, started, stopped, deleted, in the order they happened.
import { EventEmitter } from 'node:events';
import type { ContainerRecord } from './record';
import { nowNs } from '../util/time';

export type ContainerEventType =
  | 'CONTAINER_CREATED_EVENT'
  | 'CONTAINER_STARTED_EVENT'
  | 'CONTAINER_STOPPED_EVENT'
  | 'CONTAINER_DELETED_EVENT';

export interface ContainerEvent {
  type: ContainerEventType;
  /** Unix nanoseconds, decimal string. */
  createdAt: string;
  /** The record as it was when the event happened (for DELETED: its last state). */
  container: ContainerRecord;
}

export class ContainerEventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per GetContainerEvents stream; a node has few.
    this.emitter.setMaxListeners(0);
  }

  publish(type: ContainerEventType, container: ContainerRecord): void {
    const event: ContainerEvent = {
      type,
      createdAt: nowNs(),
      container: { ...container },
    };
    this.emitter.emit('event', event);
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: (e: ContainerEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
