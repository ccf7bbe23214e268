// CRI timestamps are int64 nanoseconds since the epoch, carried as decimal
// strings so they never lose precision in JavaScript numbers.
export function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}
