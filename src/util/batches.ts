// Maps a list a few items at a time, letting the event loop run between
// batches: the stats RPCs read cgroup files synchronously per object, and a
// node's worth in one go would hold every other call up for tens of ms.
import { setImmediate as yieldToLoop } from 'node:timers/promises';

export async function mapInBatches<T, R>(items: readonly T[], batchSize: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    if (i > 0) await yieldToLoop();
    out.push(...(await Promise.all(items.slice(i, i + batchSize).map(fn))));
  }
  return out;
}
