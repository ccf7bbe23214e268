// Faults during a pull — the registry resets mid-blob, answers 5xx, stalls,
// sends bytes that do not match the digest — and a disk that fills up during
// unpack. Each ends the pull with a clear error, leaves the content store and
// the snapshotter consistent (no partial blob, no half-unpacked layer, no
// image record), and the next pull of the same image succeeds.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { busyboxLayer, makeLayer, Pusher, TestProxy, TestRegistry, type PushedImage, type ProxyOptions } from '../helpers/registry';
import { imageFixture, listDir, type ImageFixture } from './fixture';

function assertConsistent(fx: ImageFixture, img: PushedImage): void {
  assert.equal(fx.images.list().length, 0, 'an image was recorded');
  assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), [], 'a partial blob was left in ingest/');
  for (const l of img.layers) {
    // A blob is either absent or complete (its digest verified on the way in).
    if (fx.images.content.has(l.digest)) assert.equal(fx.images.content.size(l.digest), l.blob.length);
  }
  assert.deepEqual(listDir(path.join(fx.config.root, 'snapshots', 'tmp')), [], 'a half-unpacked layer was left behind');
}

describe('image pulls under faults', function () {
  this.timeout(120_000);
  let registry: TestRegistry;
  let img: PushedImage;
  let fx: ImageFixture;

  before(async () => {
    registry = await TestRegistry.start();
    img = await new Pusher(registry.host).pushImage('fault/app', 'v1', {
      layers: [busyboxLayer(), makeLayer({ 'data/big': Buffer.alloc(3 * 1024 * 1024, 1) })],
    });
  });
  after(async () => {
    await registry?.stop();
  });
  beforeEach(async () => {
    fx = await imageFixture((c) => (c.image.progress_timeout_seconds = 1));
  });
  afterEach(async () => {
    await fx?.cleanup();
  });

  const faults: Array<[string, ProxyOptions, string, RegExp]> = [
    ['a registry that resets every blob download', { cutBlobs: 1000, cutFraction: 0 }, 'UNAVAILABLE', /blob sha256:[0-9a-f]+/],
    ['a registry answering 503 to everything', { serverErrors: 1000 }, 'UNAVAILABLE', /registry error 503/],
    ['a registry that stalls mid-blob', { stallBlobs: true }, 'DEADLINE_EXCEEDED', /blobs\/sha256:[0-9a-f]+: no data received for 1s, transfer abandoned/],
    ['a registry sending bytes that do not match the digest', { corruptBlobs: true }, 'INVALID_ARGUMENT', /does not match its digest/],
  ];
  for (const [what, opts, kind, message] of faults) {
    it(`${what}: a clear error, a consistent store, and the next pull succeeds`, async () => {
      const proxy = await TestProxy.start(registry.host, opts);
      try {
        await assert.rejects(fx.images.pull(`${proxy.host}/fault/app:v1`), (err: unknown) => {
          assert.ok(err instanceof BerthError, String(err));
          assert.equal(err.kind, kind, err.message);
          assert.match(err.message, message);
          return true;
        });
      } finally {
        await proxy.stop();
      }
      assertConsistent(fx, img);
      const ok = await fx.images.pull(`${registry.host}/fault/app:v1`);
      assert.equal(ok.id, img.configDigest);
    });
  }

  it('a disk that fills up during unpack: RESOURCE_EXHAUSTED, nothing half-written, and a pull succeeds once there is room', async () => {
    // The snapshotter's root on a tmpfs too small for the 3 MiB layer.
    const small = await imageFixture((c, dir) => {
      c.image.progress_timeout_seconds = 1;
      const root = path.join(dir, 'root');
      fs.mkdirSync(path.join(root, 'snapshots'), { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', path.join(root, 'snapshots')]);
    });
    const mnt = path.join(small.config.root, 'snapshots');
    try {
      await assert.rejects(small.images.pull(`${registry.host}/fault/app:v1`), (err: unknown) => {
        assert.ok(err instanceof BerthError, String(err));
        assert.equal(err.kind, 'RESOURCE_EXHAUSTED', err.message);
        assert.match(err.message, /ENOSPC|no space/i);
        return true;
      });
      assertConsistent(small, img);
      // Room again: the same store pulls the image.
      execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
      const ok = await small.images.pull(`${registry.host}/fault/app:v1`);
      assert.equal(ok.id, img.configDigest);
    } finally {
      execFileSync('umount', ['-l', mnt]);
      await small.cleanup();
    }
  });
});
