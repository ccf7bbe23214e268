// StopContainer: the stop signal, up to the timeout, then SIGKILL. Idempotent
// (a missing or exited container is stopped). It honours the caller: when the
// client gives up (`signal`), berth stops waiting and does not escalate to
// SIGKILL on its own schedule; the next StopContainer decides again.
import { deadlineExceeded, errorMessage, internal } from '../errors';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import type { ContainerRecord } from './record';
import { isExited, lifecycleStateOf } from './state';

const KILL_WAIT_MS = 30_000;
const UNSTARTED_KILL_WAIT_MS = 10_000;

export class ContainerStopper {
  constructor(
    private readonly deps: ContainerDeps,
    private readonly monitor: ExitMonitor,
  ) {}

  async stop(idOrPrefix: string, timeoutSeconds: number, signal?: AbortSignal): Promise<void> {
    const rec = this.deps.store.find(idOrPrefix, (r) => r.phase !== 'creating');
    if (!rec) return;
    await this.deps.lock.run(rec.id, () => this.stopLocked(rec, timeoutSeconds, signal));
  }

  /** Call with the container's lock held. */
  async stopLocked(rec: ContainerRecord, timeoutSeconds: number, signal?: AbortSignal): Promise<void> {
    const { runtime, logger } = this.deps;
    await this.monitor.refresh(rec);
    if (isExited(rec)) return;
    if (lifecycleStateOf(rec) === 'created') {
      // Never started: kill the waiting init; the shim records the exit.
      await runtime.kill(rec, 'SIGKILL').catch(() => undefined);
      await this.monitor.awaitExit(rec, UNSTARTED_KILL_WAIT_MS);
      return;
    }
    if (timeoutSeconds > 0) {
      await runtime.kill(rec, rec.stopSignal.trim() || 'SIGTERM').catch((err: unknown) => {
        logger.debug('stop signal not delivered', { container: rec.id, error: errorMessage(err) });
      });
      const outcome = await this.monitor.awaitExit(rec, timeoutSeconds * 1000, signal);
      if (outcome === 'exited') return;
      if (outcome === 'aborted') {
        throw deadlineExceeded(`stopping container ${rec.id}: the client gave up before it exited; it was sent ${rec.stopSignal} and not killed`);
      }
      logger.info('container ignored its stop signal; killing it', { container: rec.id, signal: rec.stopSignal });
    }
    if (this.ownsPidNamespace(rec)) {
      // Its init's death ends it: the kernel kills the rest of its PID namespace
      // (exec'd processes included). runc's `kill --all` would freeze the cgroup
      // and signal each process in it, for the same outcome (as containerd, init only).
      await runtime.kill(rec, 'SIGKILL').catch(() => undefined);
    } else {
      if (this.deps.pods.cgroupDriver?.kind === 'systemd') {
        // `kill --all` signals what the container's cgroup lists, and under systemd v1 a scope's processes
        // were seen moved up to the pod slice in the devices hierarchy, where runc looks: kill the init too.
        await runtime.kill(rec, 'SIGKILL').catch(() => undefined);
      }
      await runtime.kill(rec, 'SIGKILL', true).catch(() => undefined);
    }
    if ((await this.monitor.awaitExit(rec, KILL_WAIT_MS)) !== 'exited') {
      throw internal(`container ${rec.id} did not exit after SIGKILL within 30 s`);
    }
  }

  /** Whether the container has a PID namespace of its own (its pod's mode CONTAINER, the kubelet's default): the spec gave it one. */
  private ownsPidNamespace(rec: ContainerRecord): boolean {
    try {
      return this.deps.pods.get(rec.podSandboxId).namespaceModes.pid === 'CONTAINER';
    } catch {
      return false; // no pod record to tell: kill everything in its cgroup
    }
  }
}
