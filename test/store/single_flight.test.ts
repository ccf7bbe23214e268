import * as assert from 'node:assert/strict';
import { SingleFlight } from '../../src/util/single_flight';

describe('SingleFlight', () => {
  it('shares one run among concurrent callers of a key, and forgets it once settled', async () => {
    const f = new SingleFlight<number>();
    let calls = 0;
    let release: (v: number) => void = () => undefined;
    const work = () => {
      calls++;
      return new Promise<number>((r) => (release = r));
    };
    const a = f.run('k', work);
    const b = f.run('k', work);
    assert.equal(calls, 1);
    assert.equal(f.has('k'), true);
    assert.equal(f.get('k'), a);
    release(7);
    assert.deepEqual(await Promise.all([a, b]), [7, 7]);
    assert.equal(f.has('k'), false);
    assert.equal(f.get('k'), undefined);
    const c = f.run('k', async () => 8);
    assert.equal(await c, 8);
  });

  it('runs different keys separately and passes a failure to every joiner', async () => {
    const f = new SingleFlight<string>();
    const failed = f.run('a', async () => {
      throw new Error('boom');
    });
    const joined = f.run('a', async () => 'never');
    const other = f.run('b', async () => 'b');
    await assert.rejects(failed, /boom/);
    await assert.rejects(joined, /boom/);
    assert.equal(await other, 'b');
    assert.equal(f.has('a'), false);
  });
});
