// Lifecycle events for GetContainerEvents (the kubelet's evented PLEG):
// created, started, stopped, deleted, in the order they happened, for
// containers and for pod sandboxes. The CRI has no pod event types: a pod's
// events use the container ones with the sandbox id as container_id, as
// containerd sends them. One bus per daemon, shared by both services.
import { EventEmitter } from 'node:events';
import type { ContainerRecord } from './record';
import type { SandboxRecord } from '../sandbox/record';
import { nowNs } from '../util/time';

export type ContainerEventType =
  | 'CONTAINER_CREATED_EVENT'
  | 'CONTAINER_STARTED_EVENT'
  | 'CONTAINER_STOPPED_EVENT'
  | 'CONTAINER_DELETED_EVENT';

/** The record as it was when the event happened (for DELETED: its last state). */
export type ContainerEvent = {
  type: ContainerEventType;
  /** Unix nanoseconds, decimal string. */
  createdAt: string;
} & ({ container: ContainerRecord; sandbox?: undefined } | { sandbox: SandboxRecord; container?: undefined });

export class ContainerEventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per GetContainerEvents stream; a node has few.
    this.emitter.setMaxListeners(0);
  }

  publish(type: ContainerEventType, container: ContainerRecord): void {
    this.emit({ type, createdAt: nowNs(), container: { ...container } });
  }

  publishSandbox(type: ContainerEventType, sandbox: SandboxRecord): void {
    this.emit({ type, createdAt: nowNs(), sandbox: { ...sandbox } });
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: (e: ContainerEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  private emit(event: ContainerEvent): void {
    this.emitter.emit('event', event);
  }
}
