// Shared by the sandbox RPC modules: record -> CRI shapes.
import type { PodSandbox } from '../gen/runtime/v1/PodSandbox';
import type { PodSandboxStatus } from '../gen/runtime/v1/PodSandboxStatus';
import type { SandboxRecord } from '../sandbox/record';
import type { SandboxService } from '../sandbox/service';

export function podSandboxOf(sandboxes: SandboxService, rec: SandboxRecord): PodSandbox {
  return {
    id: rec.id,
    metadata: rec.metadata,
    state: sandboxes.criState(rec),
    createdAt: rec.createdAt,
    labels: rec.config.labels,
    annotations: rec.config.annotations,
    // The handler the pod asked for ("" for none), not the one that resolved to.
    runtimeHandler: rec.requestedHandler ?? rec.runtimeHandler,
  };
}

export function podSandboxStatusOf(sandboxes: SandboxService, rec: SandboxRecord): PodSandboxStatus {
  return {
    ...podSandboxOf(sandboxes, rec),
    network: { ip: rec.network.ip, additionalIps: rec.network.additionalIps.map((ip) => ({ ip })) },
    linux: {
      namespaces: {
        options: {
          network: rec.namespaceModes.network,
          pid: rec.namespaceModes.pid,
          ipc: rec.namespaceModes.ipc,
          targetId: '',
        },
      },
    },
  };
}
