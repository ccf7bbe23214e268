import * as assert from 'node:assert/strict';
import { settleAll } from '../../src/util/settle';

describe('util: settleAll runs steps side by side and fails only once all have settled', () => {
  it('returns every value in order', async () => {
    const [a, b] = await settleAll([Promise.resolve(1), Promise.resolve('two')]);
    assert.equal(a, 1);
    assert.equal(b, 'two');
  });

  it('throws the first failure in argument order, after the slow step has finished', async () => {
    let slowDone = false;
    const slow = new Promise<void>((r) => setTimeout(() => {
      slowDone = true;
      r();
    }, 30));
    await assert.rejects(
      settleAll([Promise.reject(new Error('first')), slow, Promise.reject(new Error('second'))]),
      (err: Error) => err.message === 'first' && slowDone,
    );
  });
});
