// The per-phase breakdown of the pod path, read from berthd's own
// berth_pod_phase_duration_seconds histogram: the mean of each phase of
// RunPodSandbox, CreateContainer and StartContainer over a section of a
// benchmark (the difference of two scrapes).
import { fetchText } from '../test/helpers/http';
import type { BerthBench } from './common';
import { out } from './common';

/** sum and count per "rpc/phase". */
export type PhaseTotals = Map<string, { sum: number; count: number }>;

const SERIES = /^berth_pod_phase_duration_seconds_(sum|count)\{rpc="([a-z_]+)",phase="([a-z0-9_]+)"\} (\S+)$/;

export async function scrapePhases(b: BerthBench): Promise<PhaseTotals> {
  const totals: PhaseTotals = new Map();
  if (!b.berthd.metricsPort) return totals;
  const body = await fetchText(`http://127.0.0.1:${b.berthd.metricsPort}/metrics`);
  for (const line of body.split('\n')) {
    const m = SERIES.exec(line);
    if (!m) continue;
    const key = `${m[2]}/${m[3]}`;
    const t = totals.get(key) ?? { sum: 0, count: 0 };
    if (m[1] === 'sum') t.sum = Number(m[4]);
    else t.count = Number(m[4]);
    totals.set(key, t);
  }
  return totals;
}

/** One line per RPC: its phases' mean milliseconds between the two scrapes, in the order first seen. */
export function printPhases(before: PhaseTotals, after: PhaseTotals): void {
  const byRpc = new Map<string, string[]>();
  for (const [key, a] of after) {
    const b = before.get(key) ?? { sum: 0, count: 0 };
    const n = a.count - b.count;
    if (n <= 0) continue;
    const [rpc, phase] = key.split('/');
    const list = byRpc.get(rpc) ?? [];
    list.push(`${phase} ${(((a.sum - b.sum) / n) * 1000).toFixed(1)}`);
    byRpc.set(rpc, list);
  }
  for (const [rpc, list] of byRpc) out(`         phases of ${rpc} (mean ms): ${list.join(', ')}`);
}
