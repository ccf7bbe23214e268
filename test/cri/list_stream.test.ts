// streamInBatches: bounded messages, each item once, backpressure (a reader
// that does not drain stops the shaping), and an early leave.
import * as assert from 'node:assert/strict';
import type { ServerStreamSink } from '../../src/cri/container_events';
import { streamInBatches } from '../../src/cri/list_stream';

class FakeSink<M> implements ServerStreamSink<M> {
  readonly written: M[] = [];
  readonly ctl = new AbortController();
  private waiting: (() => void)[] = [];
  /** While true, ready() waits until release(). */
  blocked = false;
  get signal(): AbortSignal {
    return this.ctl.signal;
  }
  get backlog(): number {
    return 0;
  }
  write(m: M): void {
    this.written.push(m);
  }
  ready(): Promise<void> {
    if (!this.blocked) return Promise.resolve();
    return new Promise((r) => this.waiting.push(r));
  }
  release(): void {
    this.blocked = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

describe('cri: list streaming in batches', () => {
  it('sends every item once, in order, in messages under the budget', async () => {
    const sink = new FakeSink<{ items: string[] }>();
    const records = Array.from({ length: 100 }, (_, i) => `item-${i}-${'x'.repeat(1000)}`);
    await streamInBatches(sink, records, (r) => r, (items) => ({ items }), 10_000);
    assert.deepEqual(sink.written.flatMap((m) => m.items), records);
    assert.ok(sink.written.length > 1);
    for (const m of sink.written) assert.ok(JSON.stringify(m.items).length <= 10_000 + 1100);
  });

  it('sends an item bigger than the budget alone, and skips items gone meanwhile', async () => {
    const sink = new FakeSink<{ items: string[] }>();
    await streamInBatches(sink, ['a', 'b'.repeat(500), 'gone', 'c'], (r) => (r === 'gone' ? undefined : r), (items) => ({ items }), 100);
    assert.deepEqual(sink.written.map((m) => m.items), [['a'], ['b'.repeat(500)], ['c']]);
  });

  it('shapes no further while the reader has not drained (bounded memory), and resumes after', async () => {
    const sink = new FakeSink<{ items: number[] }>();
    sink.blocked = true;
    let shaped = 0;
    const records = Array.from({ length: 1000 }, (_, i) => i);
    const done = streamInBatches(sink, records, (r) => (shaped++, r), (items) => ({ items }), 50);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sink.written.length, 0);
    assert.ok(shaped <= 32, `shaped ${shaped} items while the reader was stalled`);
    sink.release();
    await done;
    assert.equal(sink.written.flatMap((m) => m.items).length, 1000);
  });

  it('stops when the client leaves', async () => {
    const sink = new FakeSink<{ items: number[] }>();
    sink.blocked = true;
    const done = streamInBatches(sink, Array.from({ length: 1000 }, (_, i) => i), (r) => r, (items) => ({ items }), 50);
    await new Promise((r) => setTimeout(r, 20));
    sink.ctl.abort();
    sink.release();
    await done;
    assert.equal(sink.written.length, 0);
  });
});
