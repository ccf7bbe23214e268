// Group commit: callers arriving during a run share the next run, each caller
// resolves only after a run begun after its call, and a failed run fails only
// the callers it served.
import * as assert from 'node:assert/strict';
import { GroupCommit } from '../../src/util/group_commit';

/** An action whose runs are held until the test ends them one by one. */
function heldAction(): { action: () => Promise<void>; runs: Array<{ end: (err?: Error) => void }> } {
  const runs: Array<{ end: (err?: Error) => void }> = [];
  const action = (): Promise<void> =>
    new Promise<void>((resolve, reject) => runs.push({ end: (err) => (err ? reject(err) : resolve()) }));
  return { action, runs };
}

const settled = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function track(p: Promise<void>): { state: 'pending' | 'resolved' | Error } {
  const t: { state: 'pending' | 'resolved' | Error } = { state: 'pending' };
  p.then(
    () => (t.state = 'resolved'),
    (err: Error) => (t.state = err),
  );
  return t;
}

describe('group commit', () => {
  it('runs at once for a lone caller and resolves when the run ends', async () => {
    const { action, runs } = heldAction();
    const group = new GroupCommit(action);
    const a = track(group.request());
    assert.equal(runs.length, 1);
    await settled();
    assert.equal(a.state, 'pending');
    runs[0]!.end();
    await settled();
    assert.equal(a.state, 'resolved');
    assert.ok(group.idle);
  });

  it('serves every caller arriving during a run with one next run, resolving them only after it', async () => {
    const { action, runs } = heldAction();
    let idleCalls = 0;
    const group = new GroupCommit(action, () => idleCalls++);
    const first = track(group.request());
    const later = Array.from({ length: 9 }, () => track(group.request()));
    assert.equal(runs.length, 1, 'no second run while the first is under way');
    runs[0]!.end();
    await settled();
    assert.equal(first.state, 'resolved');
    assert.ok(later.every((t) => t.state === 'pending'), 'a run begun before their call does not serve them');
    assert.equal(runs.length, 2, 'the waiting callers share one run');
    runs[1]!.end();
    await settled();
    assert.ok(later.every((t) => t.state === 'resolved'));
    assert.equal(runs.length, 2);
    assert.equal(idleCalls, 1);
    assert.ok(group.idle);
  });

  it("runs a caller's own run when idle, making callers meanwhile wait for the next run; refuses when busy", async () => {
    const { action, runs } = heldAction();
    const group = new GroupCommit(action);
    let ownDone!: () => void;
    const own = group.runIfIdle(() => new Promise<string>((resolve) => (ownDone = () => resolve('own result'))));
    assert.ok(own, 'idle: the own run is taken');
    assert.equal(group.runIfIdle(() => Promise.resolve('second')), undefined, 'busy: refused');
    const during = track(group.request());
    assert.equal(runs.length, 0, 'the action waits for the own run to end');
    ownDone();
    assert.equal(await own, 'own result');
    await settled();
    assert.equal(during.state, 'pending');
    assert.equal(runs.length, 1, 'the caller that came during the own run gets a run of the action');
    runs[0]!.end();
    await settled();
    assert.equal(during.state, 'resolved');
    assert.ok(group.idle);
  });

  it('fails only the callers of the run that failed', async () => {
    const { action, runs } = heldAction();
    const group = new GroupCommit(action);
    const first = track(group.request());
    const second = track(group.request());
    runs[0]!.end(new Error('EIO'));
    await settled();
    assert.equal((first.state as Error).message, 'EIO');
    assert.equal(second.state, 'pending');
    runs[1]!.end();
    await settled();
    assert.equal(second.state, 'resolved');
  });

  it('fails the callers when the action throws instead of rejecting, and runs again for the next caller', async () => {
    let calls = 0;
    const group = new GroupCommit(() => {
      calls++;
      if (calls === 1) throw new Error('thrown');
      return Promise.resolve();
    });
    await assert.rejects(group.request(), /thrown/);
    await group.request();
    assert.equal(calls, 2);
  });
});
