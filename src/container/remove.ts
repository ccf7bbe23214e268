// RemoveContainer: stop if needed, mark the record removing (a restart
// finishes the job), then tear everything down. Idempotent.
import { crashPoint } from '../util/crashpoint';
import type { ContainerDeps } from './deps';
import type { ContainerStopper } from './stop';
import type { ContainerTeardown } from './teardown';
import { isExited, markRemoving } from './state';

export async function removeContainer(
  deps: ContainerDeps,
  stopper: ContainerStopper,
  teardown: ContainerTeardown,
  idOrPrefix: string,
): Promise<void> {
  const rec = deps.store.find(idOrPrefix);
  if (!rec) return;
  await deps.lock.run(rec.id, async () => {
    if (!deps.store.get(rec.id)) return;
    if (!isExited(rec) && rec.phase !== 'creating') await stopper.stopLocked(rec, 0);
    await deps.store.update(rec.id, markRemoving);
    crashPoint('container-remove:after-removing-record');
    await teardown.run(rec);
    deps.logger.info('container removed', { container: rec.id, pod: rec.podSandboxId });
    deps.events.publish('CONTAINER_DELETED_EVENT', rec);
  });
}
