// Per-phase timing of the pod path: RunPodSandbox, CreateContainer and
// StartContainer each time their steps (record, cgroup, pin, CNI ADD,
// snapshot, bundle, shim...), and StopPodSandbox, RemovePodSandbox and a
// container's teardown theirs (containers, CNI DEL, pause, runtime delete,
// shim release...), into berth_pod_phase_duration_seconds{rpc,phase}
// and, at debug level, one log line per call listing every phase. Phases that
// run side by side are each timed on their own, so they may add up to more
// than the call took; `total` is the call's own time.
import { levelEnabled, type Logger } from '../log/logger';

export type PhaseRpc =
  | 'run_pod_sandbox'
  | 'create_container'
  | 'start_container'
  | 'stop_pod_sandbox'
  | 'remove_pod_sandbox'
  | 'remove_container';

/** Where finished phases go (RuntimeMetrics.podPhase). */
export interface PhaseSink {
  podPhase(rpc: PhaseRpc, phase: string, seconds: number): void;
}

/** Phase names are label values: a small fixed set per call, never an id. */
const PHASE_NAME = /^[a-z][a-z0-9_]{0,39}$/;

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export class PhaseTrace {
  private readonly started = process.hrtime.bigint();
  private readonly phases: Array<[string, number]> = [];

  constructor(
    readonly rpc: PhaseRpc,
    private readonly sink: PhaseSink,
  ) {}

  /** Times one phase of the call; the phase is recorded whether it succeeds or fails. */
  async time<T>(phase: string, fn: () => Promise<T> | T): Promise<T> {
    if (!PHASE_NAME.test(phase)) throw new Error(`phase name ${JSON.stringify(phase)} is not a label value`);
    const start = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      this.record(phase, msSince(start));
    }
  }

  private record(phase: string, ms: number): void {
    this.phases.push([phase, ms]);
    this.sink.podPhase(this.rpc, phase, ms / 1000);
  }

  /** Records `total` and writes the debug line naming every phase in milliseconds. */
  finish(logger: Logger, fields: Record<string, string>): void {
    const totalMs = msSince(this.started);
    this.record('total', totalMs);
    if (!levelEnabled(logger, 'debug')) return;
    const phases = Object.fromEntries(this.phases.map(([p, ms]) => [p, Math.round(ms * 100) / 100]));
    logger.debug('phase trace', { rpc: this.rpc, ...fields, phasesMs: phases });
  }
}
