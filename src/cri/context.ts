// What every CRI handler is given: configuration, logging and the services
// that do the work. Handlers stay thin: validate, delegate, shape the reply.
// The daemon wires every service; tests pass small fakes.
import type { BerthConfig } from '../config/config';
import type { Logger } from '../log/logger';
import type { RuntimeHandlerRegistry } from '../runtime/handlers';
import type { SandboxService } from '../sandbox/service';
import type { CniManager } from '../network/cni';
import type { ImageService } from '../image/service';
import type { ContainerService } from '../container/service';
import type { StreamingServer } from '../streaming/server';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';

/** What a unary handler knows of its call: `signal` aborts when the client cancels or its deadline passes. */
export interface CallInfo {
  readonly signal: AbortSignal;
}

export interface CriContext {
  readonly config: BerthConfig;
  readonly logger: Logger;
  readonly version: string;
  readonly handlers: RuntimeHandlerRegistry;
  readonly sandboxes: SandboxService;
  /** Pod networking (CNI): Status's NetworkReady, UpdateRuntimeConfig's pod CIDR. */
  readonly network: CniManager;
  /** Images: pulls, the image and content stores. */
  readonly images: ImageService;
  /** The exec/attach/port-forward streaming server. */
  readonly streaming: StreamingServer;
  readonly containers: ContainerService;
  /** Runtime metrics (events dropped for slow GetContainerEvents clients). */
  readonly metrics: RuntimeMetrics;
}
