// SnapshotUsageBook: stale writable layers are re-measured in the background,
// one loop turn per layer, never before the reader has its answer.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setImmediate as loopTurn } from 'node:timers/promises';
import { QUIET_MAX_MS, REFRESH_MS, SnapshotUsageBook } from '../../src/snapshotter/usage';

describe('SnapshotUsageBook', () => {
  let dir: string;
  const realNow = Date.now;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-usage-'))));
  afterEach(() => {
    Date.now = realNow;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers from memory and re-walks stale writable layers afterwards, giving the loop a turn before each', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    for (const k of keys) fs.mkdirSync(path.join(dir, k));
    const walked = new Set<string>(); // dirOf is asked before and after each walk
    const book = new SnapshotUsageBook((key) => {
      walked.add(key);
      return { dir: path.join(dir, key), writable: true, withDir: false };
    });
    book.start(keys);
    const first = await book.total();
    assert.equal(first.inodes, 0n);
    assert.deepEqual([...walked].sort(), keys);

    walked.clear();
    for (const k of keys) fs.writeFileSync(path.join(dir, k, 'f'), 'x');
    const later = realNow() + REFRESH_MS + 1;
    Date.now = () => later;
    const stale = await book.total();
    assert.equal(stale.inodes, 0n, 'the answer is the figures in memory');
    assert.equal(walked.size, 0, 'no layer is walked before the reader has its answer');
    await loopTurn();
    assert.ok(walked.size <= 1, `walked ${walked.size} layers in one loop turn`);
    for (let i = 0; i < 20 && walked.size < keys.length; i++) await loopTurn();
    assert.deepEqual([...walked].sort(), keys);
    for (let i = 0; i < 3; i++) await loopTurn();
    assert.equal((await book.total()).inodes, BigInt(keys.length));
  });

  it('does not walk a stale layer whose activity probe reads as before its last walk, until QUIET_MAX_MS', async () => {
    fs.mkdirSync(path.join(dir, 'a'));
    let walks = 0;
    let activity = 'cpu 1';
    const book = new SnapshotUsageBook(() => {
      walks++;
      return { dir: path.join(dir, 'a'), writable: true, withDir: false };
    });
    book.setActivityProbe(() => activity);
    let now = realNow();
    Date.now = () => now;
    await book.measure('a');
    const settle = async () => {
      for (let i = 0; i < 5; i++) await loopTurn();
    };
    const walked = async (): Promise<boolean> => {
      const before = walks;
      await book.of('a');
      await settle();
      return walks > before;
    };

    fs.writeFileSync(path.join(dir, 'a', 'f'), 'x'); // written from outside: the probe cannot tell
    now += REFRESH_MS + 1;
    assert.equal(await walked(), false, 'quiet: not walked');
    const quiet = await book.of('a');
    assert.equal(quiet?.at, now, 'the figure is marked current');
    assert.equal(quiet?.inodes, 0n);

    activity = 'cpu 2';
    now += REFRESH_MS + 1;
    assert.equal(await walked(), true, 'something ran: walked');
    assert.equal((await book.of('a'))?.inodes, 1n);

    now += QUIET_MAX_MS + 1;
    assert.equal(await walked(), true, 'walked once QUIET_MAX_MS old, however quiet');

    book.setActivityProbe(() => undefined);
    now += REFRESH_MS + 1;
    assert.equal(await walked(), true, 'an unknown activity: walked');
  });
});
