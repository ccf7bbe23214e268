// Layers unpacked in worker threads: several at once, committed only after
// their parent, a worker that stops mid-layer, and the same result on the
// main thread.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { BerthError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { UnpackPool } from '../../src/snapshotter/unpack_pool';
import { buildTar, sha256Digest } from '../helpers/tar_writer';
import { applyTar, destroyEnv, fakeChainId, GZIP, makeEnv, streamOf, type Env } from './fixtures';

const MiB = 1024 * 1024;

/** Polls until `cond` holds (at most ~30 s). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let tries = 0; !cond(); tries++) {
    assert.ok(tries < 600, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A file of `size` bytes under <tmp>/extract-*\/fs/<name>, i.e. written by an unpack not yet committed. */
function stagedSize(env: Env, name: string): number {
  const tmp = path.join(env.root, 'tmp');
  for (const d of fs.readdirSync(tmp)) {
    const f = path.join(tmp, d, 'fs', name);
    if (fs.existsSync(f)) return fs.statSync(f).size;
  }
  return -1;
}

describe('snapshotter: unpack workers', function () {
  this.timeout(60_000);
  let env: Env;
  beforeEach(async () => {
    env = await makeEnv();
  });
  afterEach(async () => {
    await destroyEnv(env);
  });

  it('unpacks a layer whose parent is not committed yet, and commits it only after the parent', async () => {
    const parentTar = buildTar([{ name: 'p', body: 'parent' }]);
    const childTar = buildTar([{ name: 'c', body: 'c'.repeat(100_000) }]);
    const parent = fakeChainId('parent');
    const child = fakeChainId('child');
    let parentCommitted!: () => void;
    const parentReady = new Promise<void>((r) => (parentCommitted = r));
    const applied = env.snap.applyLayer({
      chainId: child,
      parentChainId: parent,
      diffId: sha256Digest(childTar),
      mediaType: GZIP,
      stream: streamOf(zlib.gzipSync(childTar)),
      parentReady,
    });
    await until(() => stagedSize(env, 'c') === 100_000, 'the child unpacked into its staging directory');
    assert.equal(env.snap.hasCommitted(child), false);
    await applyTar(env.snap, parentTar, parent);
    parentCommitted();
    await applied;
    assert.ok(env.snap.hasCommitted(child));
    assert.equal(fs.readFileSync(path.join(env.snap.path(child), 'c'), 'utf8').length, 100_000);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });

  it('a layer whose parent fails fails with it and leaves no staging directory', async () => {
    const childTar = buildTar([{ name: 'c', body: 'child' }]);
    const child = fakeChainId('orphan');
    await assert.rejects(
      env.snap.applyLayer({
        chainId: child,
        parentChainId: fakeChainId('bad parent'),
        diffId: sha256Digest(childTar),
        mediaType: GZIP,
        stream: streamOf(zlib.gzipSync(childTar)),
        parentReady: Promise.reject(new BerthError('INVALID_ARGUMENT', 'the parent did not match its digest')),
      }),
      (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT' && /parent did not match/.test(err.message),
    );
    assert.equal(env.snap.hasCommitted(child), false);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'snapshots')), []);
  });

  it('a worker that stops mid-layer fails that layer (INTERNAL) and leaves nothing; the next layer gets a fresh worker', async () => {
    const tar = buildTar([
      { name: 'first', body: Buffer.alloc(MiB, 1) },
      { name: 'second', body: Buffer.alloc(MiB, 2) },
    ]);
    // The first half, then nothing more: the unpack waits for the rest.
    const stream = new Readable({ read() {} });
    stream.push(tar.subarray(0, tar.length / 2 + 4096));
    const chainId = fakeChainId('stopped');
    const applied = env.snap.applyLayer({ chainId, diffId: sha256Digest(tar), mediaType: 'application/vnd.oci.image.layer.v1.tar', stream });
    await until(() => stagedSize(env, 'first') === MiB, 'the first file written by the worker');
    await env.snap.close();
    await assert.rejects(applied, (err: unknown) => err instanceof BerthError && err.kind === 'INTERNAL' && /unpack worker stopped mid-layer/.test(err.message));
    assert.equal(stream.destroyed, true, 'the layer stream was left running');
    assert.equal(env.snap.hasCommitted(chainId), false);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    const next = fakeChainId('next');
    await applyTar(env.snap, buildTar([{ name: 'n', body: 'next' }]), next);
    assert.equal(fs.readFileSync(path.join(env.snap.path(next), 'n'), 'utf8'), 'next');
  });

  it('one worker unpacks several layers at once, with the same result as the main thread', async () => {
    const tars = [0, 1, 2].map((i) => buildTar([{ name: `d${i}/f`, body: Buffer.alloc(512 * 1024 + i, i) }, { name: `d${i}/l`, type: 'symlink', linkName: 'f' }]));
    const unpackAll = async (workers: number) => {
      const pool = new UnpackPool({ workers, log: silentLogger() });
      try {
        const roots = tars.map((_, i) => fs.mkdtempSync(path.join(env.base, `w${workers}-${i}-`)));
        const results = await Promise.all(tars.map((t, i) => pool.unpack(roots[i], GZIP, streamOf(zlib.gzipSync(t)))));
        if (workers > 0) assert.equal(pool.size, workers);
        return results.map((r, i) => ({ ...r, f: fs.readFileSync(path.join(roots[i], `d${i}`, 'f')).length, l: fs.readlinkSync(path.join(roots[i], `d${i}`, 'l')) }));
      } finally {
        await pool.close();
      }
    };
    const inWorker = await unpackAll(1);
    const onMain = await unpackAll(0);
    assert.deepEqual(inWorker, onMain);
    assert.deepEqual(
      inWorker.map((r) => `sha256:${r.sha256}`),
      tars.map((t) => sha256Digest(t)),
    );
  });

  it('a worker exits once idle, and the next layer starts a fresh one', async () => {
    const pool = new UnpackPool({ workers: 2, log: silentLogger(), idleMs: 100 });
    try {
      for (const i of [1, 2]) {
        const tar = buildTar([{ name: 'f', body: `layer ${i}` }]);
        const root = fs.mkdtempSync(path.join(env.base, `idle-${i}-`));
        const result = await pool.unpack(root, GZIP, streamOf(zlib.gzipSync(tar)));
        assert.equal(`sha256:${result.sha256}`, sha256Digest(tar));
        assert.equal(pool.size, 1, 'the worker that unpacked the layer is still there right after');
        await until(() => pool.size === 0, 'the idle worker exited');
      }
    } finally {
      await pool.close();
    }
  });

  it('a layer that comes while an idle worker is being stopped gets a fresh worker, not the stopping one', async () => {
    // Idle time 0: the pool's idle timer, armed before the unpack resolved, fires just before the test's own
    // timer of the same delay; so each next layer arrives right after terminate() and before the exit.
    const pool = new UnpackPool({ workers: 1, log: silentLogger(), idleMs: 0 });
    try {
      for (let i = 0; i < 10; i++) {
        const tar = buildTar([{ name: 'f', body: `layer ${i}` }]);
        const root = fs.mkdtempSync(path.join(env.base, `stopping-${i}-`));
        const result = await pool.unpack(root, GZIP, streamOf(zlib.gzipSync(tar)));
        assert.equal(`sha256:${result.sha256}`, sha256Digest(tar));
        await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      await pool.close();
    }
  });
});
