// Summarises a V8 .cpuprofile (node --cpu-prof, or the steady bench's
// STEADY_CPU_PROF): self and total time by function, optionally only the
// samples inside a window on the profile's clock (the steady bench prints its
// idle and polling windows as CLOCK_MONOTONIC µs).
//
//   node dist/bench/cpuprofile_summary.js FILE [FROM_US TO_US] [TOP]
import * as fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function label(n: ProfileNode): string {
  const url = n.callFrame.url.replace(/.*node_modules\//, '~/').replace(/.*\/dist\//, '');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber}`;
}

function main(): void {
  const [file, fromArg, toArg, topArg] = process.argv.slice(2);
  if (!file) throw new Error('usage: cpuprofile_summary.js FILE [FROM_US TO_US] [TOP]');
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const from = Number(fromArg ?? 0);
  const to = toArg === undefined ? Infinity : Number(toArg);
  const top = Number(topArg ?? 40);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busyUs = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    if (t < from || t > to) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    const leaf = byId.get(p.samples[i]);
    if (!leaf || leaf.callFrame.functionName === '(idle)') continue;
    busyUs += dt;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt);
    // Each function once per sample, however often it recurses.
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id);
      if (!node) break;
      const k = label(node);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  }
  const rows = (m: Map<string, number>): string =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms  ${k}`)
      .join('\n');
  process.stdout.write(`busy ${(busyUs / 1000).toFixed(1)} ms in the window\n-- self\n${rows(self)}\n-- total\n${rows(total)}\n`);
}

main();
