// Spare berth-shims (src/runtime/shim_spare.ts, PROTOCOL.md "Spare shims"):
// started ahead of need, they take a create's command line as orders.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { BerthError } from '../../src/errors';
import { ShimClient, type ShimSpawnOptions } from '../../src/runtime/shim_client';
import { ShimSpares } from '../../src/runtime/shim_spare';
import { buildShim, ContainerDirs, isShimProcess, makeBundle, makeRootfs, parseCriLog, procState, tempRoot, waitFor, waitingSpares, type BundleOptions } from './fixtures';

describe('berth-shim spares', function () {
  let root: string;
  let rootfs: string;
  let shimBinary: string;
  const live: ContainerDirs[] = [];
  let spares: ShimSpares;

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    shimBinary = buildShim();
    root = tempRoot('berth-spare-test-');
    rootfs = makeRootfs(root);
  });
  beforeEach(() => (spares = new ShimSpares()));
  afterEach(async function () {
    spares.close();
    for (const c of live.splice(0)) c.cleanup();
  });
  after(() => root && fs.rmSync(root, { recursive: true, force: true }));

  function container(bundle: BundleOptions): ContainerDirs {
    const c = ContainerDirs.create(root);
    live.push(c);
    c.bundle = makeBundle(c.dir, rootfs, bundle);
    return c;
  }

  function spawnOpts(c: ContainerDirs): ShimSpawnOptions {
    return { id: c.id, bundle: c.bundle, stateDir: c.stateDir, runtimeRoot: c.runtimeRoot, runtime: '/usr/sbin/runc', logPath: c.logPath, shimBinary, spares };
  }

  it('a waiting spare becomes the container\'s shim, named on its command line by id and state dir; another then waits', async function () {
    const before = new Set(waitingSpares());
    await spares.prepare(shimBinary);
    const spare = waitingSpares().filter((p) => !before.has(p));
    assert.equal(spare.length, 1, 'one spare waits');

    const c = container({ args: ['sh', '-c', 'echo from-spare; exit 4'] });
    const shim = await ShimClient.spawn(spawnOpts(c));
    assert.equal(shim.shimPid, spare[0], 'the spare runs the container');
    assert.ok(isShimProcess(spare[0], c.stateDir), 'its command line names its state dir');
    assert.ok(fs.readFileSync(`/proc/${spare[0]}/cmdline`, 'utf8').split('\0').includes(c.id), 'and its container id');
    assert.equal(JSON.parse(c.runc('state', c.id)).status, 'created');
    await shim.start();
    assert.equal((await shim.waitExit()).exitCode, 4);
    assert.ok(parseCriLog(fs.readFileSync(c.logPath, 'utf8')).some((r) => r.content === 'from-spare'));

    await spares.prepare(shimBinary);
    const next = waitingSpares().filter((p) => !before.has(p));
    assert.equal(next.length, 1, 'the next spare waits');
    spares.close();
    await waitFor('the spare leaves once let go', () => procState(next[0] as number) === null);
  });

  it('stops starting spares after three in a row could not be reached', async function () {
    // A stand-in that reports SPARE but never listens: every connection is refused.
    const starts = `${root}/fake-starts`;
    const fake = `${root}/fake-shim`;
    fs.writeFileSync(fake, `#!/bin/sh\necho started >> ${starts}\necho "SPARE 1" >&3\n`, { mode: 0o755 });
    for (let i = 0; i < 3; i++) await assert.rejects(spares.prepare(fake));
    await spares.prepare(fake);
    assert.equal(spares.take(fake), undefined);
    assert.equal(fs.readFileSync(starts, 'utf8').trim().split('\n').length, 3, 'no fourth start');
  });

  it('a spare whose runtime create fails reports the runtime error and leaves, and a spare let go leaves', async function () {
    const before = new Set(waitingSpares());
    await spares.prepare(shimBinary);
    const [spare] = waitingSpares().filter((p) => !before.has(p));
    const c = container({ args: ['true'] });
    fs.rmSync(`${c.bundle}/config.json`);
    await assert.rejects(ShimClient.spawn(spawnOpts(c)), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.equal(err.kind, 'FAILED_PRECONDITION');
      assert.match(err.message, /create failed.*config\.json/);
      return true;
    });
    await waitFor('the failed spare leaves', () => procState(spare as number) === null);
    await spares.prepare(shimBinary);
    const [next] = waitingSpares().filter((p) => !before.has(p));
    assert.ok(next);
    spares.close();
    await waitFor('the spare leaves once let go', () => procState(next) === null);
  });
});
