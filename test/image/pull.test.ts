import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { busyboxLayer, makeLayer, Pusher, selfSignedCert, startFakeRegistry, TestProxy, TestRegistry, type Layer, type PushedImage } from '../helpers/registry';
import { imageFixture, listDir, writeHostsToml, type ImageFixture } from './fixture';
import { chainIds } from '../../src/oci/chain_id';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';

const isKind = (kind: string, re: RegExp) => (err: unknown) => {
  assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, re);
  return true;
};

describe('image pulls from a real docker-registry', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let pusher: Pusher;
  let base: Layer;
  let app: PushedImage;
  let fx: ImageFixture;

  before(async () => {
    registry = await TestRegistry.start();
    pusher = new Pusher(registry.host);
    base = busyboxLayer();
    app = await pusher.pushImage('test/app', 'v1', {
      layers: [base, makeLayer({ 'etc/app.conf': 'hello\n' }), makeLayer({ 'etc/app.conf': 'replaced\n', 'data/x': 'x' })],
      config: { Env: ['PATH=/bin', 'A=1'], Cmd: ['/bin/sh', '-c', 'true'], Entrypoint: ['/bin/busybox'], WorkingDir: '/data', User: '1234:5', StopSignal: 'SIGQUIT', Volumes: { '/data': {} }, Labels: { k: 'v' } },
    });
  });
  after(async () => {
    await registry?.stop();
  });
  beforeEach(async () => {
    fx = await imageFixture();
  });
  afterEach(async () => {
    await fx?.cleanup();
  });

  it('pulls a multi-layer image over plain HTTP from a loopback registry and records it', async () => {
    const ref = `${registry.host}/test/app:v1`;
    const img = await fx.images.pull(ref);
    assert.equal(img.id, app.configDigest);
    assert.deepEqual(img.repoTags, [ref]);
    assert.deepEqual(img.repoDigests, [`${registry.host}/test/app@${app.manifestDigest}`]);
    assert.equal(img.size, app.config.length + app.layers.reduce((n, l) => n + l.blob.length, 0));
    const chain = chainIds(app.layers.map((l) => l.diffId));
    assert.deepEqual(img.chainIds, chain);
    for (const c of chain) assert.ok(fx.snapshotter.hasCommitted(c), `layer ${c} committed`);
    assert.equal(fs.readFileSync(path.join(fx.snapshotter.path(chain[2]), 'etc/app.conf'), 'utf8'), 'replaced\n');
    assert.ok(fs.statSync(path.join(fx.snapshotter.path(chain[0]), 'bin/busybox')).size > 100_000);
    for (const d of [app.manifestDigest, app.configDigest, ...app.layers.map((l) => l.digest)]) assert.ok(fx.images.content.has(d), d);
    assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), []);
    assert.deepEqual(img.config, {
      user: '1234:5',
      env: ['PATH=/bin', 'A=1'],
      entrypoint: ['/bin/busybox'],
      cmd: ['/bin/sh', '-c', 'true'],
      workingDir: '/data',
      stopSignal: 'SIGQUIT',
      volumes: ['/data'],
      labels: { k: 'v' },
      exposedPorts: [],
    });

    // Every way of naming it finds it.
    for (const name of [ref, `${registry.host}/test/app@${app.manifestDigest}`, img.id, img.id.slice(7), img.id.slice(7, 19)]) {
      assert.equal(fx.images.lookup(name)?.id, img.id, name);
    }
    assert.equal(fx.images.lookup(`${registry.host}/test/app:v2`), undefined);

    // Records survive a restart.
    fx.images.close();
    const { ImageService } = await import('../../src/image/service');
    const { silentLogger } = await import('../../src/log/logger');
    const again = await ImageService.open(fx.config, silentLogger(), fx.snapshotter, { metrics: new RuntimeMetrics(new Registry()) });
    assert.deepEqual(again.lookup(ref), img);
    again.close();
  });

  it('unpacks every layer while it downloads, whatever the concurrency', async () => {
    for (const concurrency of [1, 3]) {
      const outcomes: string[] = [];
      await fx.cleanup();
      fx = await imageFixture((c) => {
        c.image.max_concurrent_downloads = concurrency;
      });
      await fx.images.pull(`${registry.host}/test/app:v1`, undefined, (_i, _c, how) => outcomes.push(how));
      assert.deepEqual(outcomes, ['streamed', 'streamed', 'streamed'], `with ${concurrency} downloads at once`);
    }

    const again: string[] = [];
    // A container on the base layer keeps it when the image goes.
    await fx.snapshotter.prepare('keep-base', chainIds([base.diffId])[0]);
    await fx.images.remove(`${registry.host}/test/app:v1`);
    assert.ok(fx.snapshotter.hasCommitted(base.diffId));
    const other = await pusher.pushImage('test/other', 'v1', { layers: [base, makeLayer({ o: 'o' })] });
    await fx.images.pull(`${registry.host}/test/other:v1`, undefined, (_i, _c, how) => again.push(how));
    assert.deepEqual(again, ['present', 'streamed']);
    assert.ok(fx.images.lookup(other.configDigest));
  });

  it('unpacks later layers before their parent is committed, and commits in chain order', async () => {
    const layers = [makeLayer({ 'l0/f': Buffer.alloc(512 * 1024, 7) }), makeLayer({ 'l1/f': Buffer.alloc(1024 * 1024, 1) }), makeLayer({ 'l2/f': Buffer.alloc(1024 * 1024, 2) })];
    const img = await pusher.pushImage('test/overlap', 'v1', { layers });
    const chain = chainIds(layers.map((l) => l.diffId));
    const staging = path.join(fx.config.root, 'snapshots', 'tmp');
    // Both upper layers completely unpacked into their staging directories.
    const upperUnpacked = (): boolean => {
      const files = listDir(staging).flatMap((d) => ['l1', 'l2'].map((l) => path.join(staging, d, 'fs', l, 'f')));
      return files.filter((f) => fs.existsSync(f) && fs.statSync(f).size === 1024 * 1024).length === 2;
    };
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // The base layer's download is held until layers 1 and 2 have been unpacked.
    const proxy = await TestProxy.start(registry.host, { holdBlob: { digest: layers[0].digest, until: held } });
    try {
      const order: number[] = [];
      const pulled = fx.images.pull(`${proxy.host}/test/overlap:v1`, undefined, (i, _c, how) => {
        assert.equal(how, 'streamed');
        order.push(i);
      });
      for (let tries = 0; !upperUnpacked(); tries++) {
        assert.ok(tries < 600, 'layers 1 and 2 were not unpacked while layer 0 was held');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(!fx.snapshotter.hasCommitted(chain[1]) && !fx.snapshotter.hasCommitted(chain[2]), 'a layer was committed before its parent');
      release();
      const rec = await pulled;
      assert.equal(rec.id, img.configDigest);
      assert.deepEqual(order, [0, 1, 2]);
      // Snapshot ids are allocated at commit: ascending ids mean commits in chain order.
      const ids = chain.map((c) => Number(path.basename(path.dirname(fx.snapshotter.path(c)))));
      assert.deepEqual([...ids].sort((a, b) => a - b), ids);
      assert.equal(fs.readFileSync(path.join(fx.snapshotter.path(chain[2]), 'l2', 'f')).length, 1024 * 1024);
      assert.deepEqual(listDir(staging), []);
    } finally {
      release();
      await proxy.stop();
    }
  });

  it('a middle layer that does not match its digest: nothing of it or above is kept, no staging directory, and a clean re-pull', async () => {
    // Random bytes: the proxy tampers only with blobs over 1 KiB.
    const layers = [makeLayer({ a: randomBytes(64 * 1024) }), makeLayer({ b: randomBytes(256 * 1024) }), makeLayer({ c: randomBytes(256 * 1024) })];
    const img = await pusher.pushImage('test/badmiddle', 'v1', { layers });
    const chain = chainIds(layers.map((l) => l.diffId));
    const proxy = await TestProxy.start(registry.host, { corruptBlob: layers[1].digest });
    try {
      await assert.rejects(fx.images.pull(`${proxy.host}/test/badmiddle:v1`), isKind('INVALID_ARGUMENT', /does not match its digest/));
    } finally {
      await proxy.stop();
    }
    assert.equal(fx.snapshotter.hasCommitted(chain[1]), false);
    assert.equal(fx.snapshotter.hasCommitted(chain[2]), false);
    assert.equal(fx.images.content.has(layers[1].digest), false);
    assert.deepEqual(listDir(path.join(fx.config.root, 'snapshots', 'tmp')), [], 'a staging directory was left behind');
    assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), [], 'a partial blob was left behind');
    assert.equal(fx.images.list().length, 0);
    const ok = await fx.images.pull(`${registry.host}/test/badmiddle:v1`);
    assert.equal(ok.id, img.configDigest);
  });

  it('a cancelled pull stops its downloads and leaves nothing; a pull sharing them goes on', async () => {
    const layers = [makeLayer({ a: randomBytes(256 * 1024) }), makeLayer({ b: randomBytes(256 * 1024) })];
    const img = await pusher.pushImage('test/cancel', 'v1', { layers });
    const chain = chainIds(layers.map((l) => l.diffId));
    for (const shared of [false, true]) {
      await fx.cleanup();
      fx = await imageFixture();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const proxy = await TestProxy.start(registry.host, { holdBlob: { digest: layers[1].digest, until: held } });
      try {
        const ref = `${proxy.host}/test/cancel:v1`;
        const client = new AbortController();
        const cancelled = fx.images.pull(ref, undefined, undefined, undefined, client.signal);
        const other = shared ? fx.images.pull(ref) : undefined;
        for (let tries = 0; !proxy.seen.some((r) => r.url.includes(layers[1].digest)); tries++) {
          assert.ok(tries < 600, 'the download of layer 1 never started');
          await new Promise((r) => setTimeout(r, 20));
        }
        client.abort();
        release();
        await assert.rejects(cancelled, isKind('ABORTED', /cancelled: the client went away/));
        if (other) assert.equal((await other).id, img.configDigest, 'the pull sharing the cancelled downloads failed');
        else {
          assert.equal(fx.images.list().length, 0);
          assert.equal(fx.snapshotter.hasCommitted(chain[1]), false);
        }
        assert.deepEqual(listDir(path.join(fx.config.root, 'snapshots', 'tmp')), [], 'a staging directory was left behind');
        assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), [], 'a partial blob was left behind');
      } finally {
        release();
        await proxy.stop();
      }
    }
  });

  it('pulls by digest (name@sha256 and name:tag@sha256) and an OCI manifest', async () => {
    const oci = await pusher.pushImage('test/oci', 'v1', { layers: [base], manifestMediaType: 'oci' });
    const byDigest = await fx.images.pull(`${registry.host}/test/oci:ignored@${oci.manifestDigest}`);
    assert.equal(byDigest.id, oci.configDigest);
    assert.deepEqual(byDigest.repoTags, []);
    assert.deepEqual(byDigest.repoDigests, [`${registry.host}/test/oci@${oci.manifestDigest}`]);
    const tagged = await fx.images.pull(`${registry.host}/test/oci:v1`);
    assert.equal(tagged.id, oci.configDigest);
    assert.deepEqual(tagged.repoTags, [`${registry.host}/test/oci:v1`]);
    assert.equal(fx.images.list().length, 1);
  });

  it('selects linux/amd64 from an index and reports the index digest', async () => {
    const amd = await pusher.pushImage('test/multi', '', { layers: [base], architecture: 'amd64' });
    const arm = await pusher.pushImage('test/multi', '', { layers: [makeLayer({ 'arm': 'arm' })], architecture: 'arm64' });
    const indexDigest = await pusher.pushIndex('test/multi', 'v1', [
      { image: arm, architecture: 'arm64', variant: 'v8' },
      { image: amd, architecture: 'amd64' },
    ]);
    const img = await fx.images.pull(`${registry.host}/test/multi:v1`);
    assert.equal(img.id, process.arch === 'arm64' ? arm.configDigest : amd.configDigest);
    assert.equal(img.manifestDigest, process.arch === 'arm64' ? arm.manifestDigest : amd.manifestDigest);
    assert.deepEqual(img.repoDigests, [`${registry.host}/test/multi@${indexDigest}`]);
    assert.ok(fx.images.content.has(indexDigest));
    // A single-platform image for another architecture is refused, as containerd does.
    const other = process.arch === 'arm64' ? amd : arm;
    await assert.rejects(fx.images.pull(`${registry.host}/test/multi@${other.manifestDigest}`), isKind('NOT_FOUND', /no match for platform/));
  });

  it('moves a tag to the newly pushed image on a re-pull', async () => {
    const one = await pusher.pushImage('test/moving', 'latest', { layers: [base], config: { Cmd: ['one'] } });
    const first = await fx.images.pull(`${registry.host}/test/moving`);
    assert.equal(first.id, one.configDigest);
    const two = await pusher.pushImage('test/moving', 'latest', { layers: [base], config: { Cmd: ['two'] } });
    const second = await fx.images.pull(`${registry.host}/test/moving:latest`);
    assert.equal(second.id, two.configDigest);
    assert.deepEqual(second.repoTags, [`${registry.host}/test/moving:latest`]);
    const old = fx.images.lookup(one.configDigest);
    assert.deepEqual(old?.repoTags, []);
    assert.deepEqual(old?.repoDigests, [`${registry.host}/test/moving@${one.manifestDigest}`]);
  });

  it('downloads each blob once for concurrent pulls of the same image', async () => {
    const proxy = await TestProxy.start(registry.host);
    try {
      const ref = `${proxy.host}/test/app:v1`;
      const [a, b, c] = await Promise.all([fx.images.pull(ref), fx.images.pull(ref), fx.images.pull(ref)]);
      assert.equal(a.id, app.configDigest);
      assert.equal(b.id, a.id);
      assert.equal(c.id, a.id);
      for (const l of app.layers) assert.equal(proxy.blobGets(l.digest), 1, `layer ${l.digest} fetched once`);
      assert.equal(fx.images.list().length, 1);
    } finally {
      await proxy.stop();
    }
  });

  it('resumes a blob download the registry cut halfway', async () => {
    const proxy = await TestProxy.start(registry.host, { cutBlobs: 2 });
    try {
      const img = await fx.images.pull(`${proxy.host}/test/app:v1`);
      assert.equal(img.id, app.configDigest);
      assert.ok(fx.snapshotter.hasCommitted(img.chainIds[2]));
      assert.ok(proxy.blobGets(base.digest) >= 2, 'the cut blob was requested again');
    } finally {
      await proxy.stop();
    }
  });

  it('fails cleanly when the registry keeps cutting the connection', async () => {
    const proxy = await TestProxy.start(registry.host, { cutBlobs: 1000, cutFraction: 0 });
    try {
      await assert.rejects(fx.images.pull(`${proxy.host}/test/app:v1`), isKind('UNAVAILABLE', /blob sha256:|aborted|closed|ECONNRESET/i));
      assert.equal(fx.images.list().length, 0);
      assert.ok(!fx.images.content.has(base.digest));
      assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), []);
    } finally {
      await proxy.stop();
    }
  });

  it('retries server errors with backoff, and gives up with a clear error', async () => {
    const flaky = await TestProxy.start(registry.host, { serverErrors: 2 });
    const down = await TestProxy.start(registry.host, { serverErrors: 1000 });
    try {
      assert.equal((await fx.images.pull(`${flaky.host}/test/app:v1`)).id, app.configDigest);
      assert.equal(flaky.counts.serverErrors, 2);
      await assert.rejects(fx.images.pull(`${down.host}/test/app:v1`), isKind('UNAVAILABLE', /registry error 503/));
      assert.equal(down.counts.serverErrors, 4, 'four attempts');
    } finally {
      await flaky.stop();
      await down.stop();
    }
  });

  it('refuses blob bytes that do not match their digest and stores nothing of them', async () => {
    const proxy = await TestProxy.start(registry.host, { corruptBlobs: true });
    try {
      await assert.rejects(fx.images.pull(`${proxy.host}/test/app:v1`), isKind('INVALID_ARGUMENT', /does not match its digest/));
      for (const l of app.layers) assert.ok(!fx.images.content.has(l.digest) || l.blob.length <= 1024);
      assert.deepEqual(listDir(path.join(fx.config.root, 'content', 'ingest')), []);
      assert.equal(fx.images.list().length, 0);
      assert.ok(!fx.snapshotter.hasCommitted(base.diffId));
    } finally {
      await proxy.stop();
    }
  });

  it('falls back from a dead mirror to the upstream named in hosts.toml', async () => {
    const deadPort = (await import('../helpers/registry')).freePort;
    const dead = `127.0.0.1:${await deadPort()}`;
    writeHostsToml(fx.config, 'registry.invalid', `server = "http://${registry.host}"\n\n[host."http://${dead}"]\n  capabilities = ["pull", "resolve"]\n`);
    const img = await fx.images.pull('registry.invalid/test/app:v1');
    assert.equal(img.id, app.configDigest);
    assert.deepEqual(img.repoTags, ['registry.invalid/test/app:v1']);
  });

  it('uses a working mirror before the upstream', async () => {
    const proxy = await TestProxy.start(registry.host);
    try {
      writeHostsToml(fx.config, 'registry.invalid', `server = "http://${registry.host}"\n[host."http://${proxy.host}"]\ncapabilities = ["pull", "resolve"]\n`);
      await fx.images.pull('registry.invalid/test/app:v1');
      assert.equal(proxy.counts.manifestGets, 1);
      assert.equal(proxy.blobGets(base.digest), 1);
    } finally {
      await proxy.stop();
    }
  });

  it('talks HTTPS with the CA, skip_verify and client certificate from hosts.toml', async () => {
    const server = selfSignedCert(fx.dir, 'server');
    const client = selfSignedCert(fx.dir, 'client');
    const proxy = await TestProxy.start(registry.host, { tls: { key: server.key, cert: server.cert, clientCa: client.cert } });
    try {
      const ref = 'secure.invalid/test/app:v1';
      const hosts = (extra: string) => writeHostsToml(fx.config, 'secure.invalid', `server = "https://${proxy.host}"\n${extra}\n`);
      hosts(`ca = ${JSON.stringify(server.certPath)}`);
      await assert.rejects(fx.images.pull(ref), isKind('UNAVAILABLE', /https:\/\/127\.0\.0\.1.*(certificate|socket hang up|ECONNRESET|alert)/i));
      hosts(`skip_verify = true\nclient = [[${JSON.stringify(client.certPath)}, ${JSON.stringify(client.keyPath)}]]`);
      assert.equal((await fx.images.pull(ref)).id, app.configDigest);
      await fx.images.remove(ref);
      hosts(`ca = [${JSON.stringify(server.certPath)}]\nclient = [[${JSON.stringify(client.certPath)}, ${JSON.stringify(client.keyPath)}]]`);
      assert.equal((await fx.images.pull(ref)).id, app.configDigest);
      hosts('');
      await assert.rejects(fx.images.pull(ref), isKind('UNAVAILABLE', /certificate/i));
    } finally {
      await proxy.stop();
    }
  });

  it('reports a missing image and a missing registry clearly', async () => {
    await assert.rejects(fx.images.pull(`${registry.host}/test/nope:v1`), isKind('NOT_FOUND', /not found/));
    await assert.rejects(fx.images.pull('Bad:Ref'), isKind('INVALID_ARGUMENT', /invalid image reference/));
  });

  it('refuses schema 1 manifests with a clear error', async () => {
    const fake = await startFakeRegistry({
      '/v2/old/image/manifests/v1': {
        mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
        body: JSON.stringify({ schemaVersion: 1, name: 'old/image', tag: 'v1', fsLayers: [], history: [] }),
      },
    });
    try {
      await assert.rejects(fx.images.pull(`${fake.host}/old/image:v1`), isKind('FAILED_PRECONDITION', /schema 1/));
    } finally {
      await fake.stop();
    }
  });

  it('drops Authorization when a blob redirect leaves the host', async () => {
    const target = await TestProxy.start(registry.host);
    const front = await TestProxy.start(registry.host, { bearer: {}, redirectBlobsTo: target.host.replace('127.0.0.1', 'localhost') });
    try {
      const img = await fx.images.pull(`${front.host}/test/app:v1`);
      assert.equal(img.id, app.configDigest);
      assert.ok(front.authorizationsOnBlobs.some((a) => a?.startsWith('Bearer ')), 'the registry got the token');
      assert.ok(target.authorizationsOnBlobs.length > 0);
      assert.ok(target.authorizationsOnBlobs.every((a) => a === undefined), 'the redirect target got no credentials');
    } finally {
      await front.stop();
      await target.stop();
    }
  });
});
