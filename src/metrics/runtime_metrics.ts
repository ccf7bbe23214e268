// What berth itself does, for Prometheus: pods and containers by state,
// container starts and exits by reason, image pulls by registry host, layer
// unpacking, operation latencies by runtime handler, CNI ADD/DEL, live
// shims, streaming sessions and dropped container events. One object, made
// by the daemon whether or not metrics are served, handed to the services.
// Label values come from small fixed sets (states, reasons, operations,
// configured runtime handlers, registry hosts): never ids.
import * as client from 'prom-client';
import type { Logger } from '../log/logger';
import { PhaseTrace, type PhaseRpc, type PhaseSink } from './phase_trace';

export type Operation = 'run_pod_sandbox' | 'stop_pod_sandbox' | 'create_container' | 'start_container' | 'stop_container';
export type CniOperation = 'add' | 'del';

/** Exit reasons as the container records name them; anything else is "Unknown". */
export const EXIT_REASONS = ['Completed', 'Error', 'OOMKilled', 'StartError', 'Unknown'] as const;
const STREAM_KINDS = ['exec', 'attach', 'portforward'] as const;
const POD_STATES = ['ready', 'notready'] as const;
const CONTAINER_STATES = ['created', 'running', 'exited', 'unknown'] as const;

/** What the scrape-time gauges read; the daemon binds it once the services exist. */
export interface RuntimeSnapshot {
  podsByState(): Record<(typeof POD_STATES)[number], number>;
  containersByState(): Record<(typeof CONTAINER_STATES)[number], number>;
  liveShims(): Promise<number>;
  streamingSessions(): Record<(typeof STREAM_KINDS)[number], number>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Phases of the pod path run from a fraction of a millisecond (a record write) to seconds (a slow CNI plugin). */
const PHASE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const PULL_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export class RuntimeMetrics implements PhaseSink {
  private source?: RuntimeSnapshot;
  private readonly phaseSeconds: client.Histogram<'rpc' | 'phase'>;
  private readonly operationSeconds: client.Histogram<'operation' | 'runtime_handler'>;
  private readonly operationFailures: client.Counter<'operation' | 'runtime_handler'>;
  private readonly containerStarts: client.Counter<'runtime_handler'>;
  private readonly containerExits: client.Counter<'reason'>;
  private readonly pulls: client.Counter<'registry'>;
  private readonly pullFailures: client.Counter<'registry'>;
  private readonly pullBytes: client.Counter<'registry'>;
  private readonly pullSeconds: client.Histogram<'registry'>;
  private readonly pullsInProgress: client.Gauge;
  private readonly unpackSeconds: client.Histogram;
  private readonly cniSeconds: client.Histogram<'operation'>;
  private readonly cniFailures: client.Counter<'operation'>;
  private readonly eventsDropped: client.Counter;

  constructor(readonly registry: client.Registry) {
    const registers = [registry];
    const self = (): RuntimeMetrics => this;
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new client.Counter<L>({ name, help, labelNames, registers });
    /** A gauge with one series per value of `label`, read at scrape time. */
    const byLabel = <K extends string>(name: string, help: string, label: string, values: readonly K[], read: (s: RuntimeSnapshot) => Record<K, number>) =>
      new client.Gauge({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          const src = self().source;
          const counts = src ? read(src) : undefined;
          for (const v of values) this.set({ [label]: v }, counts?.[v] ?? 0);
        },
      });
    byLabel('berth_pods', 'Pod sandboxes known to berth, by state.', 'state', POD_STATES, (s) => s.podsByState());
    byLabel('berth_containers', 'Containers known to berth, by state.', 'state', CONTAINER_STATES, (s) => s.containersByState());
    byLabel('berth_streaming_sessions', 'Open exec, attach and port-forward streaming sessions, by kind.', 'kind', STREAM_KINDS, (s) => s.streamingSessions());
    new client.Gauge({
      name: 'berth_shims',
      help: 'berth-shim processes alive (one per container until it is removed).',
      registers,
      async collect() {
        this.set((await self().source?.liveShims()) ?? 0);
      },
    });
    this.operationSeconds = new client.Histogram({
      name: 'berth_operation_duration_seconds',
      help: 'Time taken by pod and container operations, successful or not, by runtime handler.',
      labelNames: ['operation', 'runtime_handler'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.phaseSeconds = new client.Histogram({
      name: 'berth_pod_phase_duration_seconds',
      help: 'Time taken by each phase of RunPodSandbox, CreateContainer and StartContainer (phase "total": the whole call); phases run side by side are timed each on its own.',
      labelNames: ['rpc', 'phase'],
      buckets: PHASE_BUCKETS,
      registers,
    });
    this.operationFailures = counter('berth_operation_failures_total', 'Pod and container operations that failed, by runtime handler.', ['operation', 'runtime_handler']);
    this.containerStarts = counter('berth_container_starts_total', 'Containers started, by runtime handler.', ['runtime_handler']);
    this.containerExits = counter('berth_container_exits_total', 'Container exits by reason (Completed, Error, OOMKilled, StartError, Unknown: the shim was lost).', ['reason']);
    for (const reason of EXIT_REASONS) this.containerExits.inc({ reason }, 0);
    this.pulls = counter('berth_image_pulls_total', 'Image pulls that succeeded, by registry host.', ['registry']);
    this.pullFailures = counter('berth_image_pull_failures_total', 'Image pulls that failed, by registry host.', ['registry']);
    this.pullBytes = counter('berth_image_pull_bytes_total', 'Size of the images pulled (compressed layers and config), by registry host.', ['registry']);
    this.pullSeconds = new client.Histogram({
      name: 'berth_image_pull_duration_seconds',
      help: 'Time taken by image pulls, successful or not, by registry host.',
      labelNames: ['registry'],
      buckets: PULL_BUCKETS,
      registers,
    });
    this.pullsInProgress = new client.Gauge({ name: 'berth_image_pulls_in_progress', help: 'Image pulls running now.', registers });
    this.unpackSeconds = new client.Histogram({
      name: 'berth_layer_unpack_duration_seconds',
      help: 'Time taken to apply one image layer to its snapshot (while it downloads, for streamed layers).',
      buckets: PULL_BUCKETS,
      registers,
    });
    this.cniSeconds = new client.Histogram({
      name: 'berth_cni_operation_duration_seconds',
      help: 'Time taken by CNI ADD (pod network setup) and DEL (teardown), successful or not.',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.cniFailures = counter('berth_cni_operation_failures_total', 'CNI ADD and DEL operations that failed.', ['operation']);
    for (const operation of ['add', 'del']) this.cniFailures.inc({ operation }, 0);
    this.eventsDropped = counter('berth_container_events_dropped_total', 'Container and pod events not delivered to a GetContainerEvents client that fell too far behind.', []);
  }

  /** Where the scrape-time gauges read from; set once by the daemon. */
  bind(source: RuntimeSnapshot): void {
    this.source = source;
  }

  /** Runs a pod or container operation, timing it and counting its failure. */
  async operation<T>(operation: Operation, runtimeHandler: string, fn: () => Promise<T>): Promise<T> {
    const labels = { operation, runtime_handler: runtimeHandler || 'default' };
    const end = this.operationSeconds.startTimer(labels);
    try {
      return await fn();
    } catch (err) {
      this.operationFailures.inc(labels);
      throw err;
    } finally {
      end();
    }
  }

  /** A per-phase trace of one pod-path call, feeding berth_pod_phase_duration_seconds. */
  private phaseTrace(rpc: PhaseRpc): PhaseTrace {
    return new PhaseTrace(rpc, this);
  }

  /**
   * Runs one pod-path call under its own phase trace, finished (total and
   * debug line) however the call ends; `fields` names the call in that line,
   * given its result (undefined when it failed).
   */
  async traced<T>(rpc: PhaseRpc, logger: Logger, fn: (trace: PhaseTrace) => Promise<T>, fields: (result: T | undefined) => Record<string, string>): Promise<T> {
    const trace = this.phaseTrace(rpc);
    let result: T | undefined;
    try {
      result = await fn(trace);
      return result;
    } finally {
      trace.finish(logger, fields(result));
    }
  }

  podPhase(rpc: PhaseRpc, phase: string, seconds: number): void {
    this.phaseSeconds.observe({ rpc, phase }, seconds);
  }

  containerStarted(runtimeHandler: string): void {
    this.containerStarts.inc({ runtime_handler: runtimeHandler || 'default' });
  }

  containerExited(reason: string): void {
    this.containerExits.inc({ reason: (EXIT_REASONS as readonly string[]).includes(reason) ? reason : 'Unknown' });
  }

  /** Runs a pull of an image from `registry` (its host), counting it, its size (`bytesOf` the result) and its time. */
  async pull<T>(registry: string, bytesOf: (result: T) => number, fn: () => Promise<T>): Promise<T> {
    const end = this.pullSeconds.startTimer({ registry });
    this.pullsInProgress.inc();
    try {
      const result = await fn();
      this.pulls.inc({ registry });
      this.pullBytes.inc({ registry }, bytesOf(result));
      return result;
    } catch (err) {
      this.pullFailures.inc({ registry });
      throw err;
    } finally {
      this.pullsInProgress.dec();
      end();
    }
  }

  async unpack<T>(fn: () => Promise<T>): Promise<T> {
    const end = this.unpackSeconds.startTimer();
    try {
      return await fn();
    } finally {
      end();
    }
  }

  async cni<T>(operation: CniOperation, fn: () => Promise<T>): Promise<T> {
    const end = this.cniSeconds.startTimer({ operation });
    try {
      return await fn();
    } catch (err) {
      this.cniFailures.inc({ operation });
      throw err;
    } finally {
      end();
    }
  }

  eventDropped(): void {
    this.eventsDropped.inc();
  }
}
