// Unit tests of the pieces behind pulls: hosts.toml, challenges, credentials,
// image records and the content store (image-spec parsing: test/oci).
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, PassThrough } from 'node:stream';
import { BerthError } from '../../src/errors';
import { ContentStore } from '../../src/content/store';
import { CredentialSource, parseChallenges } from '../../src/registry/auth';
import { isLoopbackHost, loadEndpoints } from '../../src/registry/hosts';
import { runtimeConfigOf } from '../../src/image/store';

const sha = (s: string | Buffer) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

describe('image internals', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-units-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe('hosts.toml', () => {
    it('defaults: https upstream, Docker Hub API host, plain HTTP for loopback', () => {
      assert.deepEqual(
        loadEndpoints(dir, 'docker.io').map((e) => `${e.protocol}//${e.host}${e.apiPath}`),
        ['https://registry-1.docker.io/v2'],
      );
      assert.equal(loadEndpoints(dir, 'quay.io')[0].protocol, 'https:');
      for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000']) {
        assert.ok(isLoopbackHost(h), h);
        assert.equal(loadEndpoints(dir, h)[0].protocol, 'http:', h);
      }
      assert.ok(!isLoopbackHost('10.0.0.1:5000'));
      assert.ok(!isLoopbackHost('localhost.example.com'));
    });

    it('reads mirrors in order, then the server, with capabilities, TLS and headers', () => {
      fs.mkdirSync(path.join(dir, 'reg.example:5000'));
      fs.writeFileSync(path.join(dir, 'reg.example:5000', 'ca.pem'), 'CA');
      fs.writeFileSync(
        path.join(dir, 'reg.example:5000', 'hosts.toml'),
        [
          'server = "https://upstream.example"',
          '[host."http://mirror-a:5000"]',
          '  capabilities = ["pull"]',
          '[host."https://mirror-b/custom"]',
          '  capabilities = ["pull", "resolve"]',
          '  skip_verify = true',
          '  ca = "ca.pem"',
          '  [host."https://mirror-b/custom".header]',
          '    x-test = "1"',
          '[host."https://mirror-c/exact/v2"]',
          '  override_path = true',
        ].join('\n'),
      );
      const eps = loadEndpoints(dir, 'reg.example:5000');
      assert.deepEqual(
        eps.map((e) => [`${e.protocol}//${e.host}${e.apiPath}`, [...e.capabilities].sort().join(','), e.mirror]),
        [
          ['http://mirror-a:5000/v2', 'pull', true],
          ['https://mirror-b/custom/v2', 'pull,resolve', true],
          ['https://mirror-c/exact/v2', 'pull,push,resolve', true],
          ['https://upstream.example/v2', 'pull,push,resolve', false],
        ],
      );
      assert.equal(eps[1].tls.rejectUnauthorized, false);
      assert.deepEqual(eps[1].tls.ca, [Buffer.from('CA')]);
      assert.deepEqual(eps[1].headers, { 'x-test': ['1'] });
    });

    it('refuses a broken file with the file name and reason', () => {
      fs.mkdirSync(path.join(dir, 'bad.example'));
      fs.writeFileSync(path.join(dir, 'bad.example', 'hosts.toml'), '[host."ftp://x"]\n');
      assert.throws(() => loadEndpoints(dir, 'bad.example'), (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT' && /hosts\.toml.*http or https/.test(e.message));
    });
  });

  describe('WWW-Authenticate', () => {
    it('parses Bearer and Basic challenges with quoted and bare values', () => {
      assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
        { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
      ]);
      assert.deepEqual(parseChallenges(['Basic realm="Registry Realm"', 'Bearer realm=https://x/t, service=y']), [
        { scheme: 'basic', params: { realm: 'Registry Realm' } },
        { scheme: 'bearer', params: { realm: 'https://x/t', service: 'y' } },
      ]);
      assert.deepEqual(parseChallenges('Basic realm="a\\"b", Bearer realm="r"'), [
        { scheme: 'basic', params: { realm: 'a"b' } },
        { scheme: 'bearer', params: { realm: 'r' } },
      ]);
    });
  });

  describe('credentials', () => {
    const none = { username: '', password: '', auth: '', identity_token: '', registry_token: '' };
    it('applies the request AuthConfig to the image registry, or to its serverAddress only', () => {
      const any = new CredentialSource({}, 'docker.io', { username: 'u', password: 'p' });
      assert.deepEqual(any.forHost('registry-1.docker.io', false), { username: 'u', password: 'p' });
      assert.equal(any.forHost('mirror:5000', true), undefined);
      const scoped = new CredentialSource({}, 'docker.io', { auth: Buffer.from('a:b:c').toString('base64'), serverAddress: 'https://index.docker.io/v1/' });
      assert.deepEqual(scoped.forHost('registry-1.docker.io', false), { username: 'a', password: 'b:c' });
      const elsewhere = new CredentialSource({}, 'quay.io', { username: 'u', password: 'p', serverAddress: 'ghcr.io' });
      assert.equal(elsewhere.forHost('quay.io', false), undefined);
    });

    it('falls back to image.credentials by host, for mirrors too', () => {
      const src = new CredentialSource({ 'mirror:5000': { ...none, registry_token: 't' }, 'docker.io': { ...none, identity_token: 'i' } }, 'docker.io');
      assert.deepEqual(src.forHost('mirror:5000', true), { registryToken: 't' });
      assert.deepEqual(src.forHost('registry-1.docker.io', false), { identityToken: 'i' });
      assert.equal(src.forHost('other', true), undefined);
    });
  });

  it('reads the runtime config of an image config, tolerating gaps', () => {
    assert.deepEqual(runtimeConfigOf({ config: { User: 'u', Volumes: { '/v': {} }, ExposedPorts: { '80/tcp': {} }, Labels: { a: 'b', n: 1 } } }), {
      user: 'u', env: [], entrypoint: [], cmd: [], workingDir: '', stopSignal: '', volumes: ['/v'], labels: { a: 'b' }, exposedPorts: ['80/tcp'],
    });
    assert.equal(runtimeConfigOf(null).user, '');
  });

  describe('content store', () => {
    const blob = Buffer.alloc(300_000, 7);
    const desc = { digest: sha(blob), size: blob.length };

    it('stores verified blobs, tees them, and shares concurrent ingests', async () => {
      const store = new ContentStore(dir);
      await store.init();
      let opens = 0;
      const open = () => {
        opens++;
        return Readable.from([blob.subarray(0, 1000), blob.subarray(1000)]);
      };
      const sink = new PassThrough();
      const got: Buffer[] = [];
      sink.on('data', (c: Buffer) => got.push(c));
      const [r1, r2] = await Promise.all([store.ingest(desc, open, sink), store.ingest(desc, open)]);
      assert.equal(opens, 1);
      assert.deepEqual([r1.teed, r2.teed], [true, false]);
      assert.ok(Buffer.concat(got).equals(blob));
      assert.ok(sink.writableEnded);
      assert.ok((await store.read(desc.digest)).equals(blob));
      assert.deepEqual(await store.list(), [desc.digest]);
      assert.deepEqual((await store.ingest(desc, open)).teed, false);
      assert.equal(opens, 1);
    });

    it('refuses wrong bytes or sizes, leaving nothing behind, and destroys the sink', async () => {
      const store = new ContentStore(dir);
      await store.init();
      const bad = Buffer.from(blob);
      bad[5] = 0;
      const sink = new PassThrough();
      sink.resume();
      await assert.rejects(store.ingest(desc, () => Readable.from([bad]), sink), /does not match its digest/);
      assert.ok(sink.destroyed);
      await assert.rejects(store.ingest(desc, () => Readable.from([blob.subarray(1)])), /size mismatch/);
      await assert.rejects(store.ingest(desc, () => Readable.from([blob, Buffer.from('x')])), /more than the expected/);
      assert.ok(!store.has(desc.digest));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'ingest')), []);
    });

    it('a source failing at once leaves no temp file, not even one opened late', async () => {
      const store = new ContentStore(dir);
      await store.init();
      for (let i = 0; i < 20; i++) {
        const failing = new Readable({ read() { this.destroy(new Error('connection reset')); } });
        await assert.rejects(store.ingest(desc, () => failing), /connection reset/);
      }
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(fs.readdirSync(path.join(dir, 'ingest')), []);
    });

    it('discards ingests a crash left behind', async () => {
      const store = new ContentStore(dir);
      await store.init();
      fs.writeFileSync(path.join(dir, 'ingest', `${desc.digest.slice(7)}-abc`), blob.subarray(0, 10));
      await new ContentStore(dir).init();
      assert.deepEqual(fs.readdirSync(path.join(dir, 'ingest')), []);
      assert.ok(!store.has(desc.digest));
    });
  });
});
