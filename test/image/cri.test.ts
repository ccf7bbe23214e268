// The image RPCs end to end: a real berthd, a real docker-registry.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { TestBerthd } from '../helpers/berthd';
import { busyboxLayer, makeLayer, Pusher, TestProxy, TestRegistry, type PushedImage } from '../helpers/registry';

describe('CRI ImageService through berthd', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let d: TestBerthd;
  let app: PushedImage;
  let tools: PushedImage;
  let hostsDir: string;

  before(async () => {
    registry = await TestRegistry.start({ auth: { username: 'bob', password: 'pw-123' } });
    const pusher = new Pusher(registry.host, registry.authorization);
    const base = busyboxLayer();
    app = await pusher.pushImage('cri/app', 'v1', { layers: [base, makeLayer({ 'etc/x': 'x' })], config: { User: '1001', Env: ['PATH=/bin'], Cmd: ['sh'] } });
    tools = await pusher.pushImage('cri/tools', 'v1', { layers: [base], config: { User: 'nobody:nogroup', Cmd: ['sh'] } });
    hostsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-certs-'));
    d = await TestBerthd.start({
      configToml: [
        '[image]',
        `registry_config_dir = ${JSON.stringify(hostsDir)}`,
        `pinned_images = [${JSON.stringify(`${registry.host}/cri/tools:v1`)}]`,
        `[image.credentials.${JSON.stringify(registry.host)}]`,
        'username = "bob"',
        'password = "pw-123"',
      ].join('\n'),
    });
  });
  after(async () => {
    await d?.cleanup();
    await registry?.stop();
    if (hostsDir) fs.rmSync(hostsDir, { recursive: true, force: true });
  });

  it('PullImage answers with the image id; ListImages and ImageStatus see it', async () => {
    const res = await d.cri.image.PullImage({ image: { image: `${registry.host}/cri/app:v1` } });
    assert.equal(res.imageRef, app.configDigest);
    await d.cri.image.PullImage({ image: { image: `${registry.host}/cri/tools:v1` }, auth: { username: 'bob', password: 'pw-123' } });

    const list = await d.cri.image.ListImages({});
    const ids = list.images.map((i) => i.id).sort();
    assert.deepEqual(ids, [app.configDigest, tools.configDigest].sort());
    const one = list.images.find((i) => i.id === app.configDigest);
    assert.deepEqual(one?.repoTags, [`${registry.host}/cri/app:v1`]);
    assert.deepEqual(one?.repoDigests, [`${registry.host}/cri/app@${app.manifestDigest}`]);
    assert.equal(one?.size, String(app.config.length + app.layers.reduce((n, l) => n + l.blob.length, 0)));
    assert.equal(one?.uid?.value, '1001');
    assert.equal(one?.pinned, false);
    const t = list.images.find((i) => i.id === tools.configDigest);
    assert.equal(t?.username, 'nobody');
    assert.equal(t?.uid, null);
    assert.equal(t?.pinned, true);

    const filtered = await d.cri.image.ListImages({ filter: { image: { image: `${registry.host}/cri/tools:v1` } } });
    assert.deepEqual(filtered.images.map((i) => i.id), [tools.configDigest]);

    const st = await d.cri.image.ImageStatus({ image: { image: app.configDigest.slice(7, 19) }, verbose: true });
    assert.equal(st.image?.id, app.configDigest);
    const info = JSON.parse(st.info.info) as { chainID: string; imageSpec: { config: { User: string }; rootfs: { diff_ids: string[] } } };
    assert.equal(info.imageSpec.config.User, '1001');
    assert.deepEqual(info.imageSpec.rootfs.diff_ids, app.layers.map((l) => l.diffId));
    assert.match(info.chainID, /^sha256:[a-f0-9]{64}$/);
  });

  it('ImageStatus of a missing image is an empty response, not NOT_FOUND', async () => {
    const st = await d.cri.image.ImageStatus({ image: { image: `${registry.host}/cri/missing:v9` } });
    assert.equal(st.image, null);
  });

  it('refuses an empty or invalid reference with INVALID_ARGUMENT', async () => {
    await assert.rejects(d.cri.image.PullImage({ image: { image: '' } }), (e: ServiceError) => e.code === 3);
    await assert.rejects(d.cri.image.PullImage({ image: { image: 'library/UPPER' } }), (e: ServiceError) => e.code === 3 && /lowercase/.test(e.details));
  });

  it('ImageFsInfo reports bytes, inodes and a mountpoint', async () => {
    const fsinfo = await d.cri.image.ImageFsInfo({});
    assert.equal(fsinfo.imageFilesystems.length, 1);
    const f = fsinfo.imageFilesystems[0];
    assert.ok(BigInt(f.usedBytes?.value ?? '0') > 0n);
    assert.ok(BigInt(f.inodesUsed?.value ?? '0') > 0n);
    assert.ok(f.fsId?.mountpoint.startsWith('/'));
    const now = BigInt(Date.now()) * 1_000_000n;
    assert.ok(BigInt(f.timestamp) <= now && BigInt(f.timestamp) > now - 60_000_000_000n);
  });

  it('a PullImage whose client goes away (deadline) is cancelled in berthd and leaves nothing behind', async () => {
    const plain = await TestRegistry.start();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const layer = makeLayer({ big: randomBytes(512 * 1024) });
    await new Pusher(plain.host).pushImage('cri/gone', 'v1', { layers: [layer] });
    const proxy = await TestProxy.start(plain.host, { holdBlob: { digest: layer.digest, until: held } });
    const staging = path.join(d.root, 'snapshots', 'tmp');
    const ingest = path.join(d.root, 'content', 'ingest');
    try {
      const pull = d.cri.image.PullImage({ image: { image: `${proxy.host}/cri/gone:v1` } }, { deadlineMs: 4000 });
      await assert.rejects(pull, (err: ServiceError) => err.code === grpcStatus.DEADLINE_EXCEEDED);
      assert.ok(proxy.seen.some((r) => r.url.includes(layer.digest)), 'the layer download had not started');
      release();
      for (let tries = 0; !/pull of [^ ]+cri\/gone:v1 cancelled: the client went away/.test(d.output); tries++) {
        assert.ok(tries < 600, 'berthd did not cancel the pull');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(fs.readdirSync(staging), []);
      assert.deepEqual(fs.readdirSync(ingest), []);
      const list = await d.cri.image.ListImages({});
      assert.ok(!list.images.some((i) => i.repoTags.includes(`${proxy.host}/cri/gone:v1`)));
    } finally {
      release();
      await proxy.stop();
      await plain.stop();
    }
  });

  it('RemoveImage removes by any reference and is idempotent', async () => {
    await d.cri.image.RemoveImage({ image: { image: `${registry.host}/cri/app:v1` } });
    await d.cri.image.RemoveImage({ image: { image: `${registry.host}/cri/app:v1` } });
    await d.cri.image.RemoveImage({ image: { image: tools.configDigest } });
    const list = await d.cri.image.ListImages({});
    assert.deepEqual(list.images, []);
    assert.deepEqual(fs.readdirSync(path.join(d.root, 'content', 'blobs', 'sha256')), []);
  });
});
