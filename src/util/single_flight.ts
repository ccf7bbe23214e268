// Joins concurrent runs of one operation per key (a digest, a chain ID): while
// one is in flight, later callers share its promise instead of repeating the
// work. Unlike KeyedMutex nothing queues; the entry goes when the run settles.
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** The run in flight for `key`, if any. */
  get(key: string): Promise<T> | undefined {
    return this.running.get(key);
  }

  has(key: string): boolean {
    return this.running.has(key);
  }

  /** Joins the run in flight for `key`, or starts `fn` as the one. */
  run(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.running.get(key);
    if (running) return running;
    const p = fn().finally(() => {
      if (this.running.get(key) === p) this.running.delete(key);
    });
    this.running.set(key, p);
    return p;
  }
}
