// Independent steps side by side, with a rollback-safe failure: the first
// failure is thrown only once every step has settled, so whatever undoes the
// work never races a step still running.

/** Awaits every promise; once all have settled, throws the first rejection (in argument order) or returns the values. */
export async function settleAll<T extends readonly unknown[]>(promises: readonly [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const results = await Promise.allSettled(promises);
  const values: unknown[] = [];
  for (const r of results) {
    if (r.status === 'rejected') throw r.reason;
    values.push(r.value);
  }
  return values as unknown as T;
}
