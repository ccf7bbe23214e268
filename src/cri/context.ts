// What every CRI handler is given: configuration, logging and the services
// that do the work. Handlers stay thin: validate, delegate, shape the reply.
import type { BerthConfig } from '../config/config';
import type { Logger } from '../log/logger';
import type { RuntimeHandlerRegistry } from '../runtime/handlers';
import type { SandboxService } from '../sandbox/service';
import type { CniManager } from '../network/cni';
import type { ImageService } from '../image/service';
import type { ContainerService } from '../container/service';
import type { StreamingServer } from '../streaming/server';

/** What a unary handler knows of its call: `signal` aborts when the client cancels or its deadline passes. */
export interface CallInfo {
  readonly signal: AbortSignal;
}

export interface CriContext {
  readonly config: BerthConfig;
  readonly logger: Logger;
  readonly version: string;
  readonly handlers: RuntimeHandlerRegistry;
  /** Pod sandboxes; absent until the daemon wires it (sandbox RPCs then answer UNIMPLEMENTED). */
  readonly sandboxes?: SandboxService;
  /** Pod networking. Optional until the daemon wires it; see cri/network_of.ts for the fallback. */
  readonly network?: CniManager;
  /** Images: pulls, the image and content stores. Optional until the daemon wires it; see cri/images_of.ts. */
  readonly images?: ImageService;
  /** The exec/attach/port-forward streaming server. Optional until the daemon wires it (the RPCs then answer FAILED_PRECONDITION). */
  readonly streaming?: StreamingServer;
  /** Containers; absent until wired (their RPCs then answer FAILED_PRECONDITION). */
  readonly containers?: ContainerService;
}
