// Exit monitoring: follows each running container's shim until it records an
// exit, and brings records up to date with exits that happened unobserved
// (while berthd was down, or between two calls). A shim that vanishes without
// an exit takes its container with it: the container is killed and recorded
// as lost, as containerd does when a shim goes away.
import { errorMessage } from '../errors';
import type { ShimExit } from '../runtime/container_runtime';
import type { ContainerDeps } from './deps';
import type { ContainerRecord } from './record';
import { isExited, isRunning, markExited, markLost } from './state';

export type ExitWait = 'exited' | 'timeout' | 'aborted';

export class ExitMonitor {
  private readonly watchers = new Map<string, Promise<void>>();

  constructor(private readonly deps: ContainerDeps) {}

  /** Follows the shim until the container exits, then records the exit. */
  watch(rec: ContainerRecord): void {
    if (this.watchers.has(rec.id)) return;
    const w = (async () => {
      try {
        await this.recordExit(rec, await this.deps.runtime.waitExit(rec));
      } catch (err) {
        if (this.deps.store.get(rec.id) && isRunning(rec)) {
          this.deps.logger.warn('container shim is gone; killing the container', { container: rec.id, error: errorMessage(err) });
          await this.deps.runtime.kill(rec, 'SIGKILL', true).catch((e: unknown) => {
            this.deps.logger.debug('orphan kill', { container: rec.id, error: errorMessage(e) });
          });
          await this.recordLost(rec);
        }
      } finally {
        this.watchers.delete(rec.id);
      }
    })();
    this.watchers.set(rec.id, w);
  }

  async recordExit(rec: ContainerRecord, exit: ShimExit): Promise<void> {
    if (!this.deps.store.get(rec.id) || isExited(rec)) return;
    await this.deps.store.update(rec.id, markExited(exit));
    this.deps.logger.info('container exited', { container: rec.id, exitCode: exit.exitCode, reason: rec.reason });
    this.deps.metrics.containerExited(rec.reason);
    this.deps.events.publish('CONTAINER_STOPPED_EVENT', rec);
  }

  async recordLost(rec: ContainerRecord): Promise<void> {
    if (!this.deps.store.get(rec.id)) return;
    await this.deps.store.update(rec.id, markLost);
    this.deps.metrics.containerExited(rec.reason);
    this.deps.events.publish('CONTAINER_STOPPED_EVENT', rec);
  }

  /**
   * Brings a record up to date with its shim (an exit may have happened
   * unobserved). A container being watched is current already: its exit
   * arrives through watch(), so nothing is read.
   */
  async refresh(rec: ContainerRecord): Promise<void> {
    if (!isRunning(rec) || this.watchers.has(rec.id)) return;
    const exit = await this.deps.runtime.readExit(rec);
    if (exit) await this.recordExit(rec, exit);
  }

  /** Waits for the recorded exit, at most `timeoutMs`, and no longer than the caller wants (`signal`). */
  async awaitExit(rec: ContainerRecord, timeoutMs: number, signal?: AbortSignal): Promise<ExitWait> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const outcome = await Promise.race([
      this.deps.runtime.waitExit(rec).catch(() => null),
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs))),
      new Promise<'aborted'>((r) => {
        if (signal?.aborted) return r('aborted');
        onAbort = () => r('aborted');
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    if (outcome === 'timeout' || outcome === 'aborted') return outcome;
    if (outcome) await this.recordExit(rec, outcome);
    else if (!isExited(rec)) await this.recordLost(rec);
    return 'exited';
  }

  close(): void {
    this.watchers.clear();
  }
}
