// Prometheus metrics. gRPC series follow go-grpc-prometheus's names and
// labels so existing dashboards for containerd work unchanged.
import * as http from 'node:http';
import * as https from 'node:https';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { TlsPair } from '../util/tls';
import * as client from 'prom-client';
import { RuntimeMetrics } from './runtime_metrics';
import { UnaryTally } from './unary_tally';

/** How often the event-loop delay monitor samples (its timer's period). */
export const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * How often prom-client's nodejs_eventloop_lag_* monitor samples: once a
 * second, a few dozen samples between two scrapes. Its timer is berthd's only
 * periodic wake-up: at prom-client's default, 10 ms, it cost an idle berthd
 * ~0.3 % of a core here, at 100 ms still 0.04-0.05 % (10 wake-ups a second,
 * ~45 µs each, measured from /proc/PID/task/TID/schedstat with 110 pods).
 * berth_event_loop_delay_seconds (metrics.event_loop_delay) is the
 * fine-grained measure for who wants it.
 */
export const NODE_EVENT_LOOP_SAMPLE_MS = 1000;

export interface MetricsOptions {
  /** Serve berth_event_loop_delay_seconds (perf_hooks.monitorEventLoopDelay). */
  eventLoopDelay?: boolean;
  /**
   * prom-client's process and Node.js metrics (default true). Off when
   * /metrics is not served: nothing would read them, and their event-loop
   * monitor runs a timer.
   */
  processMetrics?: boolean;
}

export class Metrics {
  readonly registry = new client.Registry();
  readonly started: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly handled: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  readonly handling: client.Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  /** What pods, containers, pulls, CNI and streaming do (runtime_metrics.ts). */
  readonly runtime: RuntimeMetrics;

  private eventLoop?: IntervalHistogram;
  private readonly tallies: UnaryTally[] = [];

  constructor(version: string, opts: MetricsOptions = {}) {
    if (opts.processMetrics ?? true) {
      client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: NODE_EVENT_LOOP_SAMPLE_MS });
      // prom-client names these gauges *_total, which Prometheus' lint (promtool
      // check metrics) rejects; the same facts are in nodejs_active_*_total's
      // siblings without the suffix, so drop them.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(name);
      }
    }
    // Unary calls are counted by their method's tally (unary_tally.ts); every
    // read of these series first takes in what the tallies hold.
    const handOver = (): void => {
      for (const t of this.tallies) t.handOver();
    };
    this.started = new client.Counter({
      name: 'grpc_server_started_total',
      help: 'Total number of RPCs started on the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      registers: [this.registry],
      collect: handOver,
    });
    this.handled = new client.Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers: [this.registry],
      collect: handOver,
    });
    this.handling = new client.Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [this.registry],
      collect: handOver,
    });
    const buildInfo = new client.Gauge({
      name: 'berth_build_info',
      help: 'A metric with a constant 1 value labeled by the version of berth and of Node.js.',
      labelNames: ['version', 'nodejs_version'],
      registers: [this.registry],
    });
    buildInfo.set({ version, nodejs_version: process.version }, 1);
    this.runtime = new RuntimeMetrics(this.registry);
    if (opts.eventLoopDelay) this.serveEventLoopDelay();
  }

  /** The tally of a unary method's calls, which feeds grpc_server_{started,handled}_total and grpc_server_handling_seconds. */
  unaryTally(service: string, method: string): UnaryTally {
    const tally = new UnaryTally(this, service, method);
    this.tallies.push(tally);
    return tally;
  }

  /**
   * berth_event_loop_delay_seconds{stat="p50"|"p90"|"p99"|"max"}: how late
   * the event loop ran a timer due every EVENT_LOOP_RESOLUTION_MS, over the
   * time since the previous scrape (a gauge may not carry a "quantile"
   * label, hence "stat"). Each scrape
   * starts a new window, as prom-client's nodejs_eventloop_lag_* gauges do.
   */
  private serveEventLoopDelay(): void {
    const h = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    h.enable();
    this.eventLoop = h;
    // The histogram holds timer periods; the delay is what exceeds the resolution.
    const delay = (ns: number): number => (h.count === 0 ? 0 : Math.max(0, ns / 1e9 - EVENT_LOOP_RESOLUTION_MS / 1000));
    new client.Gauge({
      name: 'berth_event_loop_delay_seconds',
      help: `Event-loop delay since the previous scrape (timer every ${EVENT_LOOP_RESOLUTION_MS} ms): percentiles p50, p90, p99 and max.`,
      labelNames: ['stat'],
      registers: [this.registry],
      collect() {
        for (const p of [50, 90, 99]) this.set({ stat: `p${p}` }, delay(h.percentile(p)));
        this.set({ stat: 'max' }, delay(h.max));
        h.reset();
      },
    });
  }

  /** Stops the event-loop delay monitor's timer (daemon shutdown). */
  close(): void {
    this.eventLoop?.disable();
  }
}

/** Serves GET /metrics on host:port (HTTPS with `tls`); resolves once listening. */
export async function serveMetrics(metrics: Metrics, address: string, tls?: TlsPair): Promise<http.Server> {
  const idx = address.lastIndexOf(':');
  if (idx < 0) throw new Error(`metrics address "${address}" must be host:port`);
  const host = address.slice(0, idx).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(idx + 1));
  const onRequest: http.RequestListener = (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  };
  const server: http.Server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, onRequest) : http.createServer(onRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
