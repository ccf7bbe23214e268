// Restart recovery: loads the container records and reconciles them with the
// shims. Creates and removes a killed berthd left half-done are rolled back
// or finished; exits that happened while berthd was down are recorded;
// running containers are followed again.
import { errorMessage } from '../errors';
import { nowNs } from '../util/time';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { lifecycleStateOf, markStarted } from './state';
import type { ContainerTeardown } from './teardown';

export async function recoverContainers(deps: ContainerDeps, monitor: ExitMonitor, teardown: ContainerTeardown): Promise<void> {
  const { store, runtime, logger } = deps;
  // A create cut short by the restart never returned its id, so nothing can
  // refer to it and the kubelet will retry the create: the store gives it no
  // name even if the rollback below fails (the record then stays hidden and
  // its teardown is retried by RemovePodSandbox or the next start).
  for (const rec of store.load()) {
    const state = lifecycleStateOf(rec);
    if (state === 'creating' || state === 'removing') {
      logger.info(`finishing a container ${state === 'creating' ? 'create' : 'remove'} interrupted by a restart`, { container: rec.id });
      await teardown.run(rec).catch((err: unknown) =>
        logger.error('could not clean up an interrupted container', { container: rec.id, error: errorMessage(err) }),
      );
      continue;
    }
    if (state === 'exited') continue;
    const exit = await runtime.readExit(rec);
    if (exit) {
      await monitor.recordExit(rec, exit);
    } else if (!(await runtime.shimAlive(rec))) {
      await monitor.recordLost(rec);
    } else if (state === 'running') {
      monitor.watch(rec);
    } else if (await startedUnrecorded(deps, rec)) {
      // berthd died between `runtime start` and saving RUNNING: the container
      // runs, so it is recorded as running and followed (else it would show
      // CREATED forever, refuse a second start and have its exit missed).
      // The true start time is lost; the reconciliation time is an upper bound.
      logger.info('container was started just before a restart; recording it as running', { container: rec.id });
      await store.update(rec.id, markStarted(nowNs()));
      monitor.watch(rec);
    }
  }
}

/** True when the runtime says a container recorded as CREATED is past `created` (its start went through). */
async function startedUnrecorded(deps: ContainerDeps, rec: ContainerRecord): Promise<boolean> {
  try {
    return (await deps.runtime.state(rec)).status !== 'created';
  } catch (err) {
    deps.logger.debug('runtime state of a created container', { container: rec.id, error: errorMessage(err) });
    return false;
  }
}
