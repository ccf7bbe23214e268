import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxLayer, makeLayer, Pusher, TestProxy, TestRegistry, type Layer, type PushedImage } from '../helpers/registry';
import { imageFixture, listDir, type ImageFixture } from './fixture';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';

describe('image removal and garbage collection', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let base: Layer;
  let a: PushedImage;
  let b: PushedImage;
  let fx: ImageFixture;

  before(async () => {
    registry = await TestRegistry.start();
    const pusher = new Pusher(registry.host);
    base = busyboxLayer();
    a = await pusher.pushImage('gc/a', 'v1', { layers: [base, makeLayer({ 'a': 'a' })] });
    await pusher.pushManifest('gc/a', 'v2', 'application/vnd.docker.distribution.manifest.v2+json', a.manifest);
    b = await pusher.pushImage('gc/b', 'v1', { layers: [base, makeLayer({ 'b': 'b' })] });
  });
  after(async () => registry?.stop());
  beforeEach(async () => {
    fx = await imageFixture((c) => {
      c.image.pinned_images = [`${registry.host}/gc/b:v1`];
    });
  });
  afterEach(async () => fx?.cleanup());

  const blobs = () => listDir(path.join(fx.config.root, 'content', 'blobs', 'sha256')).sort();
  const committed = async () => (await fx.snapshotter.list()).filter((s) => s.kind === 'committed').map((s) => s.key).sort();

  it('untags while other tags remain, then removes the image; removal is idempotent', async () => {
    await fx.images.pull(`${registry.host}/gc/a:v1`);
    const img = await fx.images.pull(`${registry.host}/gc/a:v2`);
    assert.deepEqual(img.repoTags.sort(), [`${registry.host}/gc/a:v1`, `${registry.host}/gc/a:v2`]);
    await fx.images.remove(`${registry.host}/gc/a:v1`);
    assert.deepEqual(fx.images.lookup(img.id)?.repoTags, [`${registry.host}/gc/a:v2`]);
    assert.equal(fx.images.lookup(`${registry.host}/gc/a:v1`), undefined);
    assert.ok(fx.images.content.has(a.layers[1].digest));
    await fx.images.remove(`${registry.host}/gc/a:v2`);
    assert.equal(fx.images.lookup(img.id), undefined);
    assert.deepEqual(blobs(), []);
    assert.deepEqual(await committed(), []);
    await fx.images.remove(`${registry.host}/gc/a:v2`);
    await fx.images.remove(img.id);
  });

  it('keeps what another image shares and removes by id prefix or digest reference', async () => {
    const ia = await fx.images.pull(`${registry.host}/gc/a:v1`);
    const ib = await fx.images.pull(`${registry.host}/gc/b:v1`);
    assert.equal(ia.chainIds[0], ib.chainIds[0]);
    await fx.images.remove(ia.id.slice(7, 19));
    assert.equal(fx.images.lookup(ia.id), undefined);
    assert.ok(fx.snapshotter.hasCommitted(ib.chainIds[0]), 'shared base layer kept');
    assert.ok(!fx.snapshotter.hasCommitted(ia.chainIds[1]), 'own layer removed');
    assert.ok(fx.images.content.has(base.digest));
    assert.ok(!fx.images.content.has(a.layers[1].digest));
    await fx.images.remove(`${registry.host}/gc/b@${b.manifestDigest}`);
    assert.deepEqual(fx.images.list(), []);
    assert.deepEqual(blobs(), []);
    assert.deepEqual(await committed(), []);
  });

  it('keeps layers a container snapshot sits on until it goes', async () => {
    const img = await fx.images.pull(`${registry.host}/gc/a:v1`);
    const key = 'container-1234';
    await fx.snapshotter.prepare(key, img.chainIds[1]);
    await fx.images.remove(img.id);
    assert.equal(fx.images.lookup(img.id), undefined);
    assert.deepEqual(await committed(), [...img.chainIds].sort());
    await fx.snapshotter.remove(key);
    assert.deepEqual(await fx.images.collectGarbage(), { blobs: 0, snapshots: 2 });
    assert.deepEqual(await committed(), []);
  });

  it('defers collection while a pull runs, so a layer it needs is never deleted under it', async () => {
    const ia = await fx.images.pull(`${registry.host}/gc/a:v1`);
    const slow = await TestProxy.start(registry.host, { blobDelayMs: 300 });
    try {
      const order: string[] = [];
      // b shares a's base layer; a is removed while b is being pulled.
      const pullB = fx.images.pull(`${slow.host}/gc/b:v1`).then((r) => {
        order.push('pulled');
        return r;
      });
      await new Promise((r) => setTimeout(r, 100));
      await fx.images.remove(ia.id);
      order.push('removed');
      const ib = await pullB;
      assert.deepEqual(order, ['removed', 'pulled'], 'RemoveImage does not wait for the pull');
      for (let i = 0; i < 50 && fx.snapshotter.hasCommitted(ia.chainIds[1]); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(!fx.snapshotter.hasCommitted(ia.chainIds[1]), "a's own layer collected after the pull");
      for (const c of ib.chainIds) assert.ok(fx.snapshotter.hasCommitted(c), c);
      for (const d of ib.blobs) assert.ok(fx.images.content.has(d), d);
    } finally {
      await slow.stop();
    }
  });

  it('collects what an interrupted pull left behind when the service starts', async () => {
    const img = await fx.images.pull(`${registry.host}/gc/a:v1`);
    // As if the daemon died after unpacking but before recording the image.
    fs.rmSync(path.join(fx.config.root, 'images', `${img.id.slice(7)}.json`));
    fx.images.close();
    const { ImageService } = await import('../../src/image/service');
    const { silentLogger } = await import('../../src/log/logger');
    fx.images = await ImageService.open(fx.config, silentLogger(), fx.snapshotter, { metrics: new RuntimeMetrics(new Registry()) });
    assert.deepEqual(fx.images.list(), []);
    assert.deepEqual(blobs(), []);
    assert.deepEqual(await committed(), []);
  });

  it('reports pinned images and layer usage', async () => {
    const ia = await fx.images.pull(`${registry.host}/gc/a:v1`);
    const ib = await fx.images.pull(`${registry.host}/gc/b:v1`);
    assert.equal(fx.images.isPinned(ia), false);
    assert.equal(fx.images.isPinned(ib), true);
    const u = await fx.images.usage();
    assert.ok(u.bytes > BigInt(fs.statSync('/bin/busybox').size), `usage ${u.bytes}`);
    assert.ok(u.inodes >= 4n);
    assert.ok(u.mountpoint.startsWith('/'));
  });
});
