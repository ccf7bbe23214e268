// The List streaming RPCs (StreamPodSandboxes, StreamContainers, ...): the
// records their List twin selects, shaped by the same helpers, written in
// lists of bounded encoded size. Each batch waits until the client has taken
// the previous ones (backpressure), so a slow reader holds at most a couple
// of batches in memory, not the whole node's answer.
import type { ServerStreamSink } from './container_events';

/**
 * Budget of one response message. The wire limit is 16 MiB (server.ts); the
 * estimate below (JSON length) exceeds the protobuf size for these shapes,
 * so a batch stays well under the limit. A single item larger than the
 * budget still goes alone: each message carries at least one item.
 */
export const STREAM_BATCH_BYTES = 4 * 1024 * 1024;
/** Items shaped at once (stats read cgroup files: a few in parallel, not the whole node). */
const SHAPE_PARALLEL = 16;

/** Upper estimate of an item's protobuf size: field names and quoting make JSON longer. */
function estimate(item: unknown): number {
  return Buffer.byteLength(JSON.stringify(item) ?? '', 'utf8') + 16;
}

/**
 * Streams `records` as `wrap(items)` messages, each item once, in order.
 * `shape` turns a record into its CRI item; a record whose item resolves to
 * undefined (gone meanwhile) is skipped. Returns when all were written or the
 * client left.
 */
export async function streamInBatches<R, T, M>(
  sink: ServerStreamSink<M>,
  records: readonly R[],
  shape: (rec: R) => T | undefined | Promise<T | undefined>,
  wrap: (items: T[]) => M,
  budget = STREAM_BATCH_BYTES,
): Promise<void> {
  let batch: T[] = [];
  let bytes = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await sink.ready();
    if (sink.signal.aborted) return;
    sink.write(wrap(batch));
    batch = [];
    bytes = 0;
  };
  for (let i = 0; i < records.length && !sink.signal.aborted; i += SHAPE_PARALLEL) {
    const items = await Promise.all(records.slice(i, i + SHAPE_PARALLEL).map(shape));
    for (const item of items) {
      if (item === undefined) continue;
      const size = estimate(item);
      if (batch.length > 0 && bytes + size > budget) await flush();
      batch.push(item);
      bytes += size;
    }
  }
  if (!sink.signal.aborted) await flush();
}
