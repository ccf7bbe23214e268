// A CriContext for tests that exercise a few handlers: the services a test
// passes are used; any other is a stand-in that fails loudly if touched, so a
// handler reaching for a service its test did not expect shows up at once.
import type { ContainerRecord } from '../../src/container/record';
import type { ContainerService } from '../../src/container/service';
import type { CriContext } from '../../src/cri/context';
import type { SandboxRecord } from '../../src/sandbox/record';
import type { SandboxService } from '../../src/sandbox/service';
import { defaultConfig } from '../../src/config/config';
import { silentLogger } from '../../src/log/logger';
import { RuntimeHandlerRegistry } from '../../src/runtime/handlers';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';

function absent<T>(what: string): T {
  const stand_in: object = new Proxy(
    {},
    {
      get(_t, prop) {
        // Promise resolution probes `then`; a missing service is not a thenable.
        if (prop === 'then') return undefined;
        throw new Error(`this test's CriContext has no ${what} (it touched .${String(prop)})`);
      },
    },
  );
  return stand_in as T;
}

export function testCriContext(parts: Partial<CriContext> = {}): CriContext {
  const config = parts.config ?? defaultConfig();
  return {
    config,
    logger: parts.logger ?? silentLogger(),
    version: parts.version ?? 'test',
    handlers: parts.handlers ?? new RuntimeHandlerRegistry(config),
    sandboxes: parts.sandboxes ?? absent('pod sandbox service'),
    containers: parts.containers ?? absent('container service'),
    images: parts.images ?? absent('image service'),
    network: parts.network ?? absent('network manager'),
    streaming: parts.streaming ?? absent('streaming server'),
    metrics: parts.metrics ?? new RuntimeMetrics(new Registry()),
  };
}

/** Containers and pods that exist and run, for streaming tests whose backends are local stand-ins. */
export function runningWorkloads(state: 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' = 'CONTAINER_RUNNING'): Pick<CriContext, 'containers' | 'sandboxes'> {
  const containers: Pick<ContainerService, 'status'> = { status: async (id: string) => ({ id, state }) as ContainerRecord };
  const sandboxes: Pick<SandboxService, 'get'> = { get: (id: string) => ({ id, state: 'ready' }) as SandboxRecord };
  return { containers: containers as ContainerService, sandboxes: sandboxes as SandboxService };
}
