// What every CRI handler is given: configuration, logging and the services
// that do the work. Handlers stay thin: validate, delegate, shape the reply.
import type { BerthConfig } from '../config/config';
import type { Logger } from '../log/logger';
import type { RuntimeHandlerRegistry } from '../runtime/handlers';

export interface CriContext {
  readonly config: BerthConfig;
  readonly logger: Logger;
  readonly version: string;
  readonly handlers: RuntimeHandlerRegistry;
}
