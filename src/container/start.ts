// StartContainer: `runtime start`, then RUNNING and exit monitoring. A start
// that fails leaves the container EXITED with reason StartError.
import { errorMessage, failedPrecondition } from '../errors';
import { crashPoint } from '../util/crashpoint';
import { nowNs } from '../util/time';
import type { PhaseTrace } from '../metrics/phase_trace';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import { lifecycleStateOf, markStarted, markStartFailed, stateWord } from './state';

export async function startContainer(deps: ContainerDeps, monitor: ExitMonitor, idOrPrefix: string, trace: PhaseTrace): Promise<void> {
  const rec = deps.store.require(idOrPrefix);
  await deps.lock.run(rec.id, async () => {
    await trace.time('refresh', () => monitor.refresh(rec));
    if (lifecycleStateOf(rec) !== 'created') {
      throw failedPrecondition(`container ${rec.id} is ${stateWord(rec)}, not created; it can only be started once`);
    }
    // The process runs from inside `runtime start`; a short-lived one can be
    // gone before it returns, so the start time is taken before.
    const startedAt = nowNs();
    try {
      await trace.time('runtime_start', () => deps.runtime.start(rec));
      crashPoint('container-start:after-runtime-start');
    } catch (err) {
      await deps.store.update(rec.id, markStartFailed(errorMessage(err)));
      deps.metrics.containerExited(rec.reason);
      throw err;
    }
    await trace.time('record_running', () => deps.store.update(rec.id, markStarted(startedAt)));
    deps.events.publish('CONTAINER_STARTED_EVENT', rec);
    deps.metrics.containerStarted(rec.runtimeHandler);
    monitor.watch(rec);
  });
}
