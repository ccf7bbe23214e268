// GetContainerEvents at the edge: pod events use the sandbox id as
// container_id with the pod's status; every subscriber gets every event; a
// subscriber whose backlog is full has events dropped, counted and logged
// while the others go on; leaving unsubscribes.
import { strict as assert } from 'node:assert';
import { Registry } from 'prom-client';
import { ContainerEventBus } from '../../src/container/events';
import type { ContainerService } from '../../src/container/service';
import { getContainerEvents, MAX_EVENT_BACKLOG, type ServerStreamSink } from '../../src/cri/container_events';
import type { ContainerEventResponse } from '../../src/gen/runtime/v1/ContainerEventResponse';
import type { Logger } from '../../src/log/logger';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import type { SandboxRecord } from '../../src/sandbox/record';
import type { SandboxService } from '../../src/sandbox/service';
import { testCriContext } from '../helpers/cri_context';

const POD = {
  id: 'a'.repeat(64),
  metadata: { name: 'p', uid: 'u', namespace: 'n', attempt: 0 },
  state: 'ready',
  createdAt: '1',
  runtimeHandler: 'runc',
  config: { labels: {}, annotations: {} },
  namespaceModes: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
  network: { ip: '10.0.0.2', additionalIps: [] },
} as unknown as SandboxRecord;

function sink(backlog: () => number): ServerStreamSink<ContainerEventResponse> & { got: ContainerEventResponse[]; leave(): void } {
  const ac = new AbortController();
  const got: ContainerEventResponse[] = [];
  return {
    got,
    write: (m) => void got.push(m),
    get backlog() {
      return backlog();
    },
    ready: () => Promise.resolve(),
    signal: ac.signal,
    leave: () => ac.abort(),
  };
}

describe('cri: GetContainerEvents fan-out and slow clients', () => {
  it('sends pod events with the sandbox id as container_id to every subscriber; drops, counts and logs for one that falls behind', async () => {
    const events = new ContainerEventBus();
    const registry = new Registry();
    const warns: Array<Record<string, unknown>> = [];
    const logger = { warn: (_m: string, meta: Record<string, unknown>) => void warns.push(meta), info: () => undefined, debug: () => undefined } as unknown as Logger;
    const ctx = testCriContext({
      logger,
      metrics: new RuntimeMetrics(registry),
      containers: { events, list: () => [] } as unknown as ContainerService,
      sandboxes: { criState: () => 'SANDBOX_READY' } as unknown as SandboxService,
    });
    const fast = sink(() => 0);
    const slow = sink(() => MAX_EVENT_BACKLOG);
    const streams = [getContainerEvents(ctx, {}, fast), getContainerEvents(ctx, {}, slow)];
    events.publishSandbox('CONTAINER_CREATED_EVENT', POD);
    events.publishSandbox('CONTAINER_STARTED_EVENT', POD);
    events.publishSandbox('CONTAINER_STOPPED_EVENT', { ...POD, state: 'notready' });
    assert.deepEqual(
      fast.got.map((e) => [e.containerEventType, e.containerId, e.podSandboxStatus?.id, e.podSandboxStatus?.network?.ip]),
      [
        ['CONTAINER_CREATED_EVENT', POD.id, POD.id, '10.0.0.2'],
        ['CONTAINER_STARTED_EVENT', POD.id, POD.id, '10.0.0.2'],
        ['CONTAINER_STOPPED_EVENT', POD.id, POD.id, '10.0.0.2'],
      ],
    );
    assert.equal(slow.got.length, 0);
    assert.match(await registry.metrics(), /^berth_container_events_dropped_total 3$/m);
    assert.equal(warns.length, 1, 'logged once, not per event');
    assert.equal(warns[0].event, 'CONTAINER_CREATED_EVENT');
    fast.leave();
    slow.leave();
    await Promise.all(streams);
    events.publishSandbox('CONTAINER_DELETED_EVENT', POD);
    assert.equal(fast.got.length, 3, 'unsubscribed on leaving');
  });
});
