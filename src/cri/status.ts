// Status: RuntimeReady and NetworkReady conditions, the runtime handlers, and
// (verbose) the effective configuration as JSON in info["config"].
import { redactedConfig } from '../config/config';
import type { StatusRequest__Output } from '../gen/runtime/v1/StatusRequest';
import type { StatusResponse } from '../gen/runtime/v1/StatusResponse';
import type { RuntimeCondition } from '../gen/runtime/v1/RuntimeCondition';
import type { RuntimeHandlerFeatures } from '../gen/runtime/v1/RuntimeHandlerFeatures';
import { supportsRecursiveReadOnly, type RuntimeHandler } from '../runtime/handlers';
import type { CriContext } from './context';

function runtimeCondition(ctx: CriContext): RuntimeCondition {
  const def = ctx.handlers.defaultHandler();
  if (!def) {
    return {
      type: 'RuntimeReady',
      status: false,
      reason: 'RuntimeHandlerMissing',
      message: `default runtime handler "${ctx.handlers.defaultName}" is not configured`,
    };
  }
  if (!def.ok) return { type: 'RuntimeReady', status: false, reason: 'RuntimeHandlerBroken', message: def.problem };
  return { type: 'RuntimeReady', status: true, reason: '', message: '' };
}

function networkCondition(ctx: CriContext): RuntimeCondition {
  const net = ctx.network.status();
  if (!net.ready) {
    return {
      type: 'NetworkReady',
      status: false,
      reason: 'NetworkPluginNotReady',
      message: `Network plugin returns error: ${net.message}`,
    };
  }
  return { type: 'NetworkReady', status: true, reason: '', message: '' };
}

/**
 * What the kubelet may use of a handler: recursive read-only mounts when its
 * binary reports "rro" (the container service then honours them); user
 * namespaces when the start-up probe ran a container in one, with an
 * idmapped rootfs, on this host.
 */
function handlerFeatures(handler: RuntimeHandler): RuntimeHandlerFeatures {
  return {
    recursiveReadOnlyMounts: handler.ok && supportsRecursiveReadOnly(handler),
    userNamespaces: handler.ok && (handler.userNamespaces?.ok ?? false),
  };
}

/** Whether the start-up probe ran a user-namespace container on the host network with this handler. */
function usernsHostNetwork(handler: RuntimeHandler | undefined): boolean {
  return !!handler?.ok && !!handler.userNamespaces?.ok && handler.userNamespaces.hostNetwork;
}

export async function status(ctx: CriContext, req: StatusRequest__Output): Promise<StatusResponse> {
  const handlers = ctx.handlers.list();
  const def = ctx.handlers.defaultHandler();
  const res: StatusResponse = {
    status: { conditions: [runtimeCondition(ctx), networkCondition(ctx)] },
    // The kubelet reads the handler with the empty name as the default one.
    runtimeHandlers: [
      ...(def ? [{ name: '', features: handlerFeatures(def) }] : []),
      ...handlers.map((h) => ({ name: h.name, features: handlerFeatures(h) })),
    ],
    // Host-network pods in a user namespace: only when the default handler's probe ran one.
    features: { supplementalGroupsPolicy: true, userNamespacesHostNetwork: usernsHostNetwork(def) },
    info: {},
  };
  if (req.verbose) {
    res.info = {
      config: JSON.stringify(redactedConfig(ctx.config)),
      runtimeHandlers: JSON.stringify(handlers),
      cniConfig: JSON.stringify(ctx.network.info()),
    };
  }
  return res;
}
