// Durable sandbox records: one JSON file per pod under <root>/pods/<id>.json,
// kept by the shared crash-safe record store.
import type { Logger } from '../log/logger';
import { DurableJsonStore } from '../store/durable_json';
import type { SandboxRecord } from './record';

export class SandboxStore extends DurableJsonStore<SandboxRecord> {
  constructor(
    /** <root>/pods */
    dir: string,
    logger: Logger,
  ) {
    super(dir, 'sandbox', logger);
  }
}
