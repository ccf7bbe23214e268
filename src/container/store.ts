// Container records in the one record store: names are "<pod>/<name>/<attempt>",
// state changes are checked against CONTAINER_STATES, and a container still
// being created is invisible to lookups (CreateContainer has not returned it).
import * as path from 'node:path';
import { notFound } from '../errors';
import type { Logger } from '../log/logger';
import { RecordStore } from '../store/record_store';
import { containerNameKey, type ContainerRecord } from './record';
import { CONTAINER_STATES, lifecycleStateOf, type ContainerLifecycleState } from './state';

export class ContainerStore extends RecordStore<ContainerRecord, ContainerLifecycleState> {
  constructor(root: string, logger: Logger) {
    super({
      dir: path.join(root, 'containers'),
      what: 'container',
      logger,
      // A create cut short by a restart never returned its id: it holds no name.
      nameOf: (rec) => (rec.phase === 'creating' ? undefined : nameOf(rec)),
      states: { machine: CONTAINER_STATES, of: lifecycleStateOf },
      createdAtOf: (rec) => rec.createdAt,
    });
  }

  /** A created container by id or unique prefix, or NOT_FOUND naming the id. */
  require(idOrPrefix: string): ContainerRecord {
    const rec = this.find(idOrPrefix, visible);
    if (!rec) throw notFound(`container "${idOrPrefix}" not found`);
    return rec;
  }

  /** Containers CreateContainer returned, in creation order. */
  visible(filter?: (rec: ContainerRecord) => boolean): ContainerRecord[] {
    return this.list((rec) => visible(rec) && (!filter || filter(rec)));
  }

  ofPod(podId: string): ContainerRecord[] {
    return this.list((rec) => rec.podSandboxId === podId);
  }
}

function visible(rec: ContainerRecord): boolean {
  return rec.phase !== 'creating';
}

export function nameOf(rec: ContainerRecord): string {
  return containerNameKey(rec.podSandboxId, rec.metadata.name, rec.metadata.attempt);
}
