// Image import/export through the admin endpoint, against a real ImageService
// (real content store, image store and snapshotter), checked through a real
// CRI server.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AdminClient } from '../../src/admin/client';
import { startAdminServer, type AdminServer } from '../../src/admin/server';
import { CriClient } from '../../src/client/cri_client';
import { CriServer } from '../../src/cri/server';
import { BerthError } from '../../src/errors';
import { chainIds } from '../../src/oci/chain_id';
import { silentLogger } from '../../src/log/logger';
import { BERTH_VERSION } from '../../src/version';
import { imageFixture, type ImageFixture } from '../image/fixture';
import { buildTar } from '../helpers/tar_writer';
import { sha256 } from '../helpers/registry';
import {
  busyboxImage,
  dockerSaveArchive,
  ociArchive,
  ociDescriptor,
  tarDir,
  writeIndexBlob,
  writeOciImage,
  writeOciIndex,
  type TestImageParts,
} from './archives';
import { testCriContext } from '../helpers/cri_context';

interface Node {
  fx: ImageFixture;
  admin: AdminServer;
  client: AdminClient;
  cri: CriClient;
  criServer: CriServer;
  close(): Promise<void>;
}

/** An ImageService with the admin endpoint and a CRI server over it. */
async function startNode(pinned: string[] = []): Promise<Node> {
  const fx = await imageFixture((c) => {
    c.image.pinned_images = pinned;
  });
  const logger = silentLogger();
  const admin = await startAdminServer({ socketPath: path.join(fx.dir, 'admin.sock'), images: fx.images, logger });
  const ctx = testCriContext({ config: fx.config, logger, version: BERTH_VERSION, images: fx.images });
  const criServer = new CriServer(ctx, undefined);
  const criSocket = path.join(fx.dir, 'cri.sock');
  await criServer.bind(criSocket);
  const cri = new CriClient(criSocket);
  return {
    fx,
    admin,
    client: new AdminClient(admin.socketPath),
    cri,
    criServer,
    async close() {
      cri.close();
      await criServer.shutdown(1000);
      await admin.close();
      await fx.cleanup();
    },
  };
}

async function importFile(n: Node, file: string) {
  return n.client.importArchive(fs.createReadStream(file));
}

async function rejectsWith(p: Promise<unknown>, kind: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BerthError, `expected a BerthError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe('admin: images import and export', function () {
  this.timeout(60_000);
  let node: Node;
  let work: string;
  let img: TestImageParts;

  before(async () => {
    node = await startNode(['busybox:1']);
    work = fs.mkdtempSync(path.join(node.fx.dir, 'work-'));
    img = busyboxImage();
  });
  after(async () => {
    await node?.close();
  });

  it('serves on a 0600 unix socket and answers unknown routes with 404', async () => {
    const st = fs.statSync(node.admin.socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      http.get({ socketPath: node.admin.socketPath, path: '/nope' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    assert.equal(status, 404);
  });

  it('imports an OCI image layout archive: recorded with its normalised name, layers unpacked, pinned reported through CRI', async () => {
    const file = path.join(work, 'oci.tar');
    const m = ociArchive(work, img, 'busybox:1', file);
    const res = await importFile(node, file);
    assert.deepEqual(res.images, [{ id: img.configDigest, names: ['docker.io/library/busybox:1', `docker.io/library/busybox@${m.digest}`] }]);
    assert.ok(node.fx.snapshotter.hasCommitted(chainIds([img.layer.diffId])[0]));

    const list = await node.cri.image.ListImages({});
    const listed = list.images.find((i) => i.id === img.configDigest);
    assert.ok(listed, 'ListImages shows the imported image');
    assert.deepEqual(listed.repoTags, ['docker.io/library/busybox:1']);
    assert.deepEqual(listed.repoDigests, [`docker.io/library/busybox@${m.digest}`]);
    assert.equal(listed.pinned, true);
    assert.equal(listed.size, String(img.config.length + img.layer.blob.length));
    const st = await node.cri.image.ImageStatus({ image: { image: 'busybox:1' }, verbose: true });
    assert.equal(st.image?.id, img.configDigest);
    assert.equal(st.image?.pinned, true);
    const info = JSON.parse(st.info.info) as { imageSpec: { config: { Cmd: string[] } } };
    assert.deepEqual(info.imageSpec.config.Cmd, ['echo', 'hello from an imported image']);
  });

  it('imports a classic docker save archive (uncompressed layers, a layer shared through a symlink)', async () => {
    const other = busyboxImage('amd64', ['true'], img.layer);
    const file = path.join(work, 'docker.tar');
    dockerSaveArchive(work, [{ img, tags: ['example.com/team/tool:2'] }, { img: other, tags: ['tool:3', 'tool:latest'] }], file);
    const res = await importFile(node, file);
    assert.deepEqual(
      res.images.map((i) => [i.id, i.names]),
      [
        [img.configDigest, ['example.com/team/tool:2']],
        [other.configDigest, ['docker.io/library/tool:3', 'docker.io/library/tool:latest']],
      ],
    );
    const st = await node.cri.image.ImageStatus({ image: { image: 'tool:3' } });
    assert.equal(st.image?.id, other.configDigest);
    assert.equal(st.image?.pinned, false);
    // The first image keeps its earlier name and gains the new one.
    const first = await node.cri.image.ImageStatus({ image: { image: img.configDigest } });
    assert.deepEqual(first.image?.repoTags.sort(), ['docker.io/library/busybox:1', 'example.com/team/tool:2']);
    // The uncompressed layer is stored under its own digest, which is its diff ID.
    assert.ok(node.fx.images.content.has(img.layer.diffId));
  });

  it('picks the host platform (linux/amd64) from a multi-platform index', async () => {
    const arm = busyboxImage('arm64', ['echo', 'arm'], img.layer);
    const amd = busyboxImage('amd64', ['echo', 'multi'], img.layer);
    const dir = fs.mkdtempSync(path.join(work, 'multi-'));
    const index = writeIndexBlob(dir, [
      { m: writeOciImage(dir, arm), os: 'linux', architecture: 'arm64' },
      { m: writeOciImage(dir, amd), os: 'linux', architecture: 'amd64' },
    ]);
    writeOciIndex(dir, [
      {
        mediaType: 'application/vnd.oci.image.index.v1+json',
        digest: index.digest,
        size: index.manifest.length,
        annotations: { 'io.containerd.image.name': 'docker.io/library/multi:1', 'org.opencontainers.image.ref.name': '1' },
      },
    ]);
    const file = tarDir(dir, path.join(work, 'multi.tar'));
    const res = await importFile(node, file);
    assert.deepEqual(res.images, [{ id: amd.configDigest, names: ['docker.io/library/multi:1', `docker.io/library/multi@${index.digest}`] }]);
    assert.equal(node.fx.images.lookup('multi:1')?.architecture, 'amd64');
  });

  it('exports images as an OCI layout archive that re-imports to the same ids into a fresh store', async () => {
    const archive = await node.client.exportImages(['busybox:1', 'tool:3']);
    const file = path.join(work, 'export.tar');
    await pipeline(archive, fs.createWriteStream(file));
    const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
    assert.ok(names.includes('oci-layout') && names.includes('index.json') && names.includes('manifest.json'));
    assert.ok(names.includes(`blobs/sha256/${img.layer.digest.slice(7)}`));
    const index = JSON.parse(execFileSync('tar', ['-xOf', file, 'index.json'], { encoding: 'utf8' })) as {
      manifests: Array<{ annotations: Record<string, string> }>;
    };
    assert.deepEqual(
      index.manifests.map((m) => m.annotations['io.containerd.image.name']),
      ['docker.io/library/busybox:1', 'docker.io/library/tool:3'],
    );

    const fresh = await startNode();
    try {
      const res = await importFile(fresh, file);
      assert.deepEqual(res.images.map((i) => i.id).sort(), [img.configDigest, busyboxImage('amd64', ['true'], img.layer).configDigest].sort());
      const before = (await node.cri.image.ListImages({})).images.filter((i) => res.images.some((r) => r.id === i.id));
      const after = (await fresh.cri.image.ListImages({})).images;
      assert.deepEqual(
        after.map((i) => [i.id, i.repoTags, i.size]).sort(),
        before.map((i) => [i.id, i.repoTags.filter((t) => t === 'docker.io/library/busybox:1' || t === 'docker.io/library/tool:3'), i.size]).sort(),
      );
      assert.ok(fresh.fx.snapshotter.hasCommitted(img.layer.diffId));
    } finally {
      await fresh.close();
    }
  });

  it('export of an unknown image is NOT_FOUND', async () => {
    await rejectsWith(node.client.exportImages(['busybox:1', 'nothere:1']), 'NOT_FOUND', /nothere:1/);
  });

  describe('hostile archives record nothing', () => {
    let clean: Node;
    before(async () => {
      clean = await startNode();
    });
    after(async () => {
      await clean?.close();
    });
    afterEach(async () => {
      assert.deepEqual(clean.fx.images.list(), [], 'nothing recorded');
    });

    it('refuses a blob whose bytes do not match its digest', async () => {
      const dir = fs.mkdtempSync(path.join(work, 'bad-'));
      const m = writeOciImage(dir, img);
      writeOciIndex(dir, [ociDescriptor(m, { 'org.opencontainers.image.ref.name': 'bad:1' })]);
      // Same size, different bytes.
      const layerPath = path.join(dir, 'blobs', 'sha256', img.layer.digest.slice(7));
      const bytes = fs.readFileSync(layerPath);
      bytes[bytes.length - 100] ^= 0xff;
      fs.writeFileSync(layerPath, bytes);
      const file = tarDir(dir, path.join(work, 'bad.tar'));
      await rejectsWith(importFile(clean, file), 'INVALID_ARGUMENT', new RegExp(`blobs/sha256/${img.layer.digest.slice(7)} is corrupt: its content does not match its digest`));
      assert.equal(clean.fx.images.content.has(img.layer.digest), false);
      await clean.fx.images.collectGarbage();
      assert.deepEqual(await clean.fx.images.content.list(), [], 'no blob left behind');
    });

    it('refuses a docker save config whose content does not match its name', async () => {
      const file = path.join(work, 'badcfg.tar');
      const dir = fs.mkdtempSync(path.join(work, 'badcfg-'));
      const wrong = sha256('something else').slice(7);
      fs.writeFileSync(path.join(dir, `${wrong}.json`), img.config);
      fs.mkdirSync(path.join(dir, 'l1'));
      fs.writeFileSync(path.join(dir, 'l1', 'layer.tar'), img.layerTar);
      fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: `${wrong}.json`, RepoTags: ['x:1'], Layers: ['l1/layer.tar'] }]));
      tarDir(dir, file);
      await rejectsWith(importFile(clean, file), 'INVALID_ARGUMENT', /does not match its digest/);
    });

    it('refuses entry names that climb out of the archive ("../x")', async () => {
      const big = Buffer.alloc(4 * 1024 * 1024, 7);
      const tar = buildTar([{ name: '../x', body: 'x' }, { name: 'blobs/sha256/' + sha256(big).slice(7), body: big }]);
      await rejectsWith(clean.client.importArchive(Readable.from([tar])), 'INVALID_ARGUMENT', /"\.\.\/x" contains "\.\." \(path traversal\)/);
      const abs = buildTar([{ name: '/etc/passwd', body: 'x' }]);
      await rejectsWith(clean.client.importArchive(Readable.from([abs])), 'INVALID_ARGUMENT', /absolute path/);
    });

    it('refuses manifest.json layer paths and links that leave the archive', async () => {
      const manifest = JSON.stringify([{ Config: `${img.configDigest.slice(7)}.json`, RepoTags: ['x:1'], Layers: ['../../etc/passwd'] }]);
      const tar = buildTar([
        { name: `${img.configDigest.slice(7)}.json`, body: img.config },
        { name: 'manifest.json', body: manifest },
      ]);
      await rejectsWith(clean.client.importArchive(Readable.from([tar])), 'INVALID_ARGUMENT', /path traversal/);
      const link = buildTar([{ name: 'l1/layer.tar', type: 'symlink', linkName: '../../../etc/shadow' }]);
      await rejectsWith(clean.client.importArchive(Readable.from([link])), 'INVALID_ARGUMENT', /outside the archive/);
    });

    it('an upload cut off midway fails the import and leaves the store usable', async () => {
      const file = path.join(work, 'cut.tar');
      ociArchive(work, img, 'cut:1', file);
      const whole = fs.readFileSync(file);
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ socketPath: clean.admin.socketPath, method: 'POST', path: '/images/import' });
        req.on('error', () => resolve());
        req.write(whole.subarray(0, Math.floor(whole.length / 2)), (err) => {
          if (err) reject(err);
          else setTimeout(() => req.destroy(), 100);
        });
      });
      // Garbage collection waits for running imports: it finishing proves the import ended.
      await clean.fx.images.collectGarbage();
      assert.deepEqual(await clean.fx.images.content.list(), []);
    });

    it('refuses an index.json naming a blob the archive lacks', async () => {
      const dir = fs.mkdtempSync(path.join(work, 'lacks-'));
      const m = writeOciImage(dir, img);
      writeOciIndex(dir, [ociDescriptor(m, { 'org.opencontainers.image.ref.name': 'lacks:1' })]);
      fs.rmSync(path.join(dir, 'blobs', 'sha256', img.layer.digest.slice(7)));
      const file = tarDir(dir, path.join(work, 'lacks.tar'));
      await rejectsWith(importFile(clean, file), 'INVALID_ARGUMENT', new RegExp(`lacks blob ${img.layer.digest}`));
    });

    it('refuses something that is not an image archive', async () => {
      const tar = buildTar([{ name: 'hello.txt', body: 'hi' }]);
      await rejectsWith(clean.client.importArchive(Readable.from([tar])), 'INVALID_ARGUMENT', /neither index.json .* nor manifest.json/);
      await rejectsWith(clean.client.importArchive(Readable.from([Buffer.alloc(2048, 0x41)])), 'INVALID_ARGUMENT', /tar/);
    });

    it('refuses an image whose layer does not match the diff ID its config lists', async () => {
      const liar = busyboxImage();
      const cfg = JSON.parse(liar.config.toString()) as { rootfs: { diff_ids: string[] } };
      cfg.rootfs.diff_ids = [sha256('not the layer')];
      const config = Buffer.from(JSON.stringify(cfg));
      const file = path.join(work, 'liar.tar');
      ociArchive(work, { ...liar, config, configDigest: sha256(config) }, 'liar:1', file);
      await rejectsWith(importFile(clean, file), 'INVALID_ARGUMENT', /does not match its diff ID/);
    });
  });
});

/** skopeo (Debian package skopeo) is an independent reader and writer of both archive formats. */
function findSkopeo(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const p = path.join(dir, 'skopeo');
    if (fs.existsSync(p)) return p;
  }
  return undefined;
}

describe('admin: archives interoperate with skopeo', function () {
  this.timeout(60_000);
  const skopeo = findSkopeo();
  let node: Node;
  let work: string;
  const img = busyboxImage('amd64', ['echo', 'interop']);

  before(async function () {
    if (!skopeo) this.skip();
    node = await startNode();
    work = fs.mkdtempSync(path.join(node.fx.dir, 'work-'));
    const file = path.join(work, 'in.tar');
    ociArchive(work, img, 'interop/app:1', file);
    await importFile(node, file);
  });
  after(async () => {
    await node?.close();
  });

  it('skopeo reads our export, and we import what skopeo writes (docker-archive and oci-archive)', async () => {
    const exported = path.join(work, 'export.tar');
    await pipeline(await node.client.exportImages(['interop/app:1']), fs.createWriteStream(exported));
    const sk = (...args: string[]) => execFileSync(skopeo as string, ['--insecure-policy', ...args], { encoding: 'utf8' });
    const inspected = JSON.parse(sk('inspect', '--raw', `oci-archive:${exported}:1`)) as { config: { digest: string } };
    assert.equal(inspected.config.digest, img.configDigest);
    sk('copy', `oci-archive:${exported}:1`, `docker-archive:${path.join(work, 'docker.tar')}:interop/app:2`);
    sk('copy', `oci-archive:${exported}:1`, `oci-archive:${path.join(work, 'oci.tar')}:docker.io/interop/app:3`);
    const fresh = await startNode();
    try {
      const fromDocker = await importFile(fresh, path.join(work, 'docker.tar'));
      assert.deepEqual(fromDocker.images, [{ id: img.configDigest, names: ['docker.io/interop/app:2'] }]);
      const fromOci = await importFile(fresh, path.join(work, 'oci.tar'));
      assert.deepEqual(fromOci.images.map((i) => [i.id, i.names[0]]), [[img.configDigest, 'docker.io/interop/app:3']]);
      assert.deepEqual(fresh.fx.images.lookup(img.configDigest)?.repoTags.sort(), ['docker.io/interop/app:2', 'docker.io/interop/app:3']);
    } finally {
      await fresh.close();
    }
  });
});
