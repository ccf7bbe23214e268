// The gRPC server series of one unary method (grpc_server_started_total,
// grpc_server_handled_total, grpc_server_handling_seconds), counted as calls
// begin and end in plain numbers and handed to prom-client when /metrics is
// read. prom-client validates and hashes the labels of every inc() and
// observe(), three times per call, and a kubelet polls all day: a call now
// costs two increments and a push, and the updates run together, warm, at
// a scrape. A scrape sees every call begun or ended before it, as before.
import type { Counter, Histogram } from 'prom-client';

/** Durations held between scrapes per method; past this they are handed over at once (bounded memory when nobody scrapes). */
export const MAX_PENDING_DURATIONS = 1024;

type MethodLabelNames = 'grpc_type' | 'grpc_service' | 'grpc_method';
type MethodLabels = Readonly<Record<MethodLabelNames, string>>;

/** The prom-client series a tally feeds. */
export interface UnarySeries {
  started: Counter<MethodLabelNames>;
  handled: Counter<MethodLabelNames | 'grpc_code'>;
  handling: Histogram<MethodLabelNames>;
}

export class UnaryTally {
  readonly labels: MethodLabels;
  private started = 0;
  /** Calls ended since the last hand-over, by status code name, with the labels of each code's series. */
  private readonly handled = new Map<string, { labels: Readonly<Record<MethodLabelNames | 'grpc_code', string>>; calls: number }>();
  private durations: number[] = [];

  constructor(
    private readonly series: UnarySeries,
    service: string,
    readonly method: string,
  ) {
    this.labels = { grpc_type: 'unary', grpc_service: service, grpc_method: method };
  }

  begin(): void {
    this.started++;
  }

  /** A call ended with status `code` (its name, as go-grpc-prometheus writes it) after `seconds`. */
  end(code: string, seconds: number): void {
    let h = this.handled.get(code);
    if (!h) this.handled.set(code, (h = { labels: { ...this.labels, grpc_code: code }, calls: 0 }));
    h.calls++;
    this.durations.push(seconds);
    if (this.durations.length >= MAX_PENDING_DURATIONS) this.handOver();
  }

  /** Durations not yet handed over, for tests. */
  get pendingDurations(): number {
    return this.durations.length;
  }

  /** Adds what was counted since the last hand-over to the prom-client series. */
  handOver(): void {
    const { started, handled, handling } = this.series;
    if (this.started > 0) started.inc(this.labels, this.started);
    this.started = 0;
    for (const h of this.handled.values()) {
      if (h.calls > 0) handled.inc(h.labels, h.calls);
      h.calls = 0;
    }
    const durations = this.durations;
    this.durations = [];
    for (const s of durations) handling.observe(this.labels, s);
  }
}
