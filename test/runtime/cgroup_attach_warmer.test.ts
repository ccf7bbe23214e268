import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CgroupAttachWarmer, ownCgroupProcsFile } from '../../src/runtime/cgroup_attach_warmer';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await sleep(10);
  assert.ok(cond(), what);
}

describe('runtime: the cgroup attach lock is kept warm while a create is held', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-warm-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the pid again and again while held, and stops once every holder released', async () => {
    const file = path.join(dir, 'cgroup.procs');
    fs.writeFileSync(file, '');
    const warmer = new CgroupAttachWarmer(() => Promise.resolve(file), 4242, 1);
    const lines = (): string[] => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const releaseA = warmer.hold();
    const releaseB = warmer.hold();
    await until(() => lines().length >= 3, 'several writes while held');
    assert.ok(lines().every((l) => l === '4242'));
    releaseA();
    releaseA(); // a second call must not release B's hold
    const before = lines().length;
    await until(() => lines().length > before, 'still written while B holds');
    releaseB();
    await sleep(30); // the write in flight, if any, lands
    const after = lines().length;
    await sleep(50);
    assert.equal(lines().length, after, 'no write after the last release');
  });

  it('pauses while more creates than it warms for are in flight', async () => {
    const file = path.join(dir, 'cgroup.procs');
    fs.writeFileSync(file, '');
    const warmer = new CgroupAttachWarmer(() => Promise.resolve(file), 4242, 1, 2);
    const lines = (): number => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    const releases = [warmer.hold(), warmer.hold(), warmer.hold()];
    await sleep(50);
    assert.equal(lines(), 0, 'no write with three creates in flight');
    releases[0]();
    await until(() => lines() >= 2, 'writes again with two');
    for (const r of releases) r();
  });

  it('gives up quietly, once, where the file cannot be written', async () => {
    let finds = 0;
    const warmer = new CgroupAttachWarmer(() => {
      finds++;
      return Promise.resolve(path.join(dir, 'missing', 'cgroup.procs'));
    }, process.pid, 1);
    warmer.hold()();
    await sleep(30);
    warmer.hold()();
    await sleep(30);
    assert.equal(finds, 1);
  });

  it('finds the cgroup.procs of the cgroup this process is in, and writing it moves nothing', async function () {
    const file = await ownCgroupProcsFile();
    if (!file) return this.skip(); // no cgroupfs under /sys/fs/cgroup
    assert.match(file, /^\/sys\/fs\/cgroup\/.*cgroup\.procs$/);
    assert.ok(fs.readFileSync(file, 'utf8').split('\n').includes(String(process.pid)), `${file} lists this process`);
    const cgroupsBefore = fs.readFileSync('/proc/self/cgroup', 'utf8');
    const release = new CgroupAttachWarmer().hold();
    await sleep(30);
    release();
    assert.equal(fs.readFileSync('/proc/self/cgroup', 'utf8'), cgroupsBefore);
  });
});
