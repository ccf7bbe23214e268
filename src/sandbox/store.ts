// Durable sandbox records: one JSON file per pod under <root>/pods/<id>.json,
// kept by the shared record store with the pod state machine, the pod names
// and creation order.
import type { Logger } from '../log/logger';
import { RecordStore } from '../store/record_store';
import { sandboxNameKey, type SandboxLifecycle, type SandboxRecord } from './record';
import { SANDBOX_STATES } from './state';

export class SandboxStore extends RecordStore<SandboxRecord, SandboxLifecycle> {
  constructor(
    /** <root>/pods */
    dir: string,
    logger: Logger,
  ) {
    super({
      dir,
      what: 'pod sandbox',
      logger,
      states: { machine: SANDBOX_STATES, of: (r) => r.state },
      // A create cut short (by a crash or a failed rollback) holds no name: the
      // kubelet never saw its id and retries with the same name.
      nameOf: (r) => (r.state === 'creating' ? undefined : sandboxNameKey(r.metadata)),
      createdAtOf: (r) => r.createdAt,
    });
  }
}
