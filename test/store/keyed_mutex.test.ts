import * as assert from 'node:assert/strict';
import { KeyedMutex } from '../../src/util/keyed_mutex';

describe('KeyedMutex', () => {
  it('runs one operation at a time per key, in call order, and different keys at once', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const op = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([m.run('a', op('a1', 30)), m.run('a', op('a2', 1)), m.run('b', op('b1', 1))]);
    assert.deepEqual(results, ['a1', 'a2', 'b1']);
    assert.ok(log.indexOf('end a1') < log.indexOf('start a2'), 'a2 waits for a1');
    assert.ok(log.indexOf('start b1') < log.indexOf('end a1'), 'b runs while a1 does');
  });

  it('lets the next operation run after one fails, and passes the failure to its caller', async () => {
    const m = new KeyedMutex();
    const failed = m.run('k', async () => {
      throw new Error('boom');
    });
    const next = m.run('k', async () => 'ok');
    await assert.rejects(failed, /boom/);
    assert.equal(await next, 'ok');
  });
});
