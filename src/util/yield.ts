// Work proportional to input (a layer's entries, its directories) must not
// hold berthd's event loop: other RPCs, timers and streams wait behind it.
// Awaiting data that is already buffered only runs microtasks, which never
// let the loop turn, so long loops call maybeYield() and give the loop a turn
// once they have held it for `budgetMs`.
import { performance } from 'node:perf_hooks';

export class EventLoopBudget {
  private since = performance.now();

  constructor(private readonly budgetMs = 5) {}

  async maybeYield(): Promise<void> {
    if (performance.now() - this.since < this.budgetMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.since = performance.now();
  }
}

/** Maps `items` one after another, giving the loop a turn whenever the budget is spent. */
export async function mapYielding<T, R>(items: readonly T[], fn: (item: T) => Promise<R>, budget = new EventLoopBudget()): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) {
    out.push(await fn(item));
    await budget.maybeYield();
  }
  return out;
}
