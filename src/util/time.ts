// CRI timestamps are int64 nanoseconds since the epoch, carried as decimal
// strings so they never lose precision in JavaScript numbers. The clock is
// wall time that never goes backwards within the process (wall time at start
// plus the monotonic clock), so records sort by creation.
const CLOCK_BASE = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

export function nowNs(): string {
  return (CLOCK_BASE + process.hrtime.bigint()).toString();
}
