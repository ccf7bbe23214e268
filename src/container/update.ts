// UpdateContainerResources and ReopenContainerLog.
import { failedPrecondition } from '../errors';
import type { LinuxContainerResources__Output } from '../gen/runtime/v1/LinuxContainerResources';
import { toOciResources } from '../runtime/spec/resources';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import { isExited, isRunning, stateWord } from './state';

export async function updateResources(
  deps: ContainerDeps,
  monitor: ExitMonitor,
  idOrPrefix: string,
  resources: LinuxContainerResources__Output | null,
): Promise<void> {
  const rec = deps.store.require(idOrPrefix);
  if (!resources) return;
  await deps.lock.run(rec.id, async () => {
    await monitor.refresh(rec);
    if (isExited(rec)) throw failedPrecondition(`container ${rec.id} has exited; its resources cannot be updated`);
    const oci = toOciResources(resources, deps.host, (m) => deps.logger.info(m, { container: rec.id }));
    await deps.runtime.update(rec, oci);
    await deps.store.update(rec.id, (r) => (r.resources = resources));
  });
}

export async function reopenLog(deps: ContainerDeps, monitor: ExitMonitor, idOrPrefix: string): Promise<void> {
  const rec = deps.store.require(idOrPrefix);
  await monitor.refresh(rec);
  if (!isRunning(rec)) {
    throw failedPrecondition(`container ${rec.id} is ${stateWord(rec)}, not running; its log cannot be reopened`);
  }
  await deps.runtime.reopenLog(rec);
}
