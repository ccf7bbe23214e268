// What the steady bench reads of a running berthd: its CPU time and memory
// from /proc, and V8's collections and the event-loop delay from its own
// /metrics.
import { berthHelpers, type BerthBench, cpuMsOf, pssKb } from './common';

// ---------------------------------------------------------------- /proc

/** utime + stime of a process in seconds; with `mainThreadOnly`, of its main thread alone. */
export function cpuSeconds(pid: number, mainThreadOnly = false): number {
  return cpuMsOf(pid, mainThreadOnly ? pid : undefined) / 1000;
}

/** PSS of berthd, every shim and every pause of this berthd, in KiB. */
export function berthPssKb(b: BerthBench): { total: number; daemon: number; helpers: number } {
  const daemon = pssKb(b.pid);
  let helpers = 0;
  for (const h of berthHelpers(b.berthd.dir)) helpers += pssKb(h.pid);
  return { total: daemon + helpers, daemon, helpers };
}

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profile timestamps, to cut a berthd profile to a window. */
export function monotonicUs(): bigint {
  return process.hrtime.bigint() / 1000n;
}

// ---------------------------------------------------------------- metrics

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  return res.text();
}

/** V8's collections so far (berthd's /metrics, from Node's gc performance entries) and the young generation's size. */
export interface GcFigures {
  /** By kind (minor, major, incremental, weakcb): count and seconds. */
  byKind: Map<string, { count: number; seconds: number }>;
  newSpaceBytes: number;
}

export async function gcFigures(port: number): Promise<GcFigures> {
  const text = await scrape(port);
  const byKind = new Map<string, { count: number; seconds: number }>();
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/gm)) {
    const k = byKind.get(m[2]) ?? { count: 0, seconds: 0 };
    if (m[1] === 'sum') k.seconds = Number(m[3]);
    else k.count = Number(m[3]);
    byKind.set(m[2], k);
  }
  const ns = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)$/m.exec(text);
  return { byKind, newSpaceBytes: ns ? Number(ns[1]) : NaN };
}

/** The collections between two scrapes, one line: "minor 120 x, 85 ms; major 2 x, 30 ms; new space 2.0 MiB". */
export function gcLine(from: GcFigures, to: GcFigures): string {
  const parts: string[] = [];
  for (const [kind, k] of to.byKind) {
    const was = from.byKind.get(kind) ?? { count: 0, seconds: 0 };
    if (k.count > was.count) parts.push(`${kind} ${k.count - was.count} x, ${((k.seconds - was.seconds) * 1000).toFixed(0)} ms`);
  }
  return `${parts.length > 0 ? parts.join('; ') : 'none'}; new space ${(to.newSpaceBytes / 1048576).toFixed(1)} MiB`;
}

/** berth_event_loop_delay_seconds p99 and max (ms) since the previous scrape (each scrape starts a new window). */
export async function eventLoopDelay(port: number): Promise<{ p99: number; max: number }> {
  const text = await scrape(port);
  const q = (stat: string): number => {
    const m = new RegExp(`^berth_event_loop_delay_seconds\\{stat="${stat}"\\} (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`berthd's /metrics has no berth_event_loop_delay_seconds{stat="${stat}"}`);
    return Number(m[1]) * 1000;
  };
  return { p99: q('p99'), max: q('max') };
}
