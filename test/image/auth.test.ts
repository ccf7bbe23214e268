import * as assert from 'node:assert/strict';
import * as winston from 'winston';
import { Writable } from 'node:stream';
import { BerthError } from '../../src/errors';
import { busyboxLayer, Pusher, TestProxy, TestRegistry, type PushedImage } from '../helpers/registry';
import { imageFixture, type ImageFixture } from './fixture';

const SECRET = 's3cret-Pa55';

function deniedWithoutLeak(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.kind, 'PERMISSION_DENIED', err.message);
    assert.match(err.message, re);
    assert.ok(!err.message.includes(SECRET), 'the password must not appear in errors');
    assert.ok(!err.message.includes(Buffer.from(`alice:${SECRET}`).toString('base64')), 'nor its base64');
    return true;
  };
}

describe('registry authentication', function () {
  this.timeout(60_000);
  let fx: ImageFixture | undefined;
  afterEach(async () => {
    await fx?.cleanup();
    fx = undefined;
  });

  describe('Basic auth (docker-registry with bcrypt htpasswd)', () => {
    let registry: TestRegistry;
    let img: PushedImage;
    before(async () => {
      registry = await TestRegistry.start({ auth: { username: 'alice', password: SECRET } });
      img = await new Pusher(registry.host, registry.authorization).pushImage('private/app', 'v1', { layers: [busyboxLayer()] });
    });
    after(async () => registry?.stop());

    it('is refused without credentials, naming where to put them', async () => {
      fx = await imageFixture();
      await assert.rejects(fx.images.pull(`${registry.host}/private/app:v1`), deniedWithoutLeak(/requires authentication.*image\.credentials/));
    });

    it('accepts username/password from the CRI AuthConfig', async () => {
      fx = await imageFixture();
      const rec = await fx.images.pull(`${registry.host}/private/app:v1`, { username: 'alice', password: SECRET });
      assert.equal(rec.id, img.configDigest);
    });

    it('accepts the base64 auth field, scoped by serverAddress', async () => {
      fx = await imageFixture();
      const auth = Buffer.from(`alice:${SECRET}`).toString('base64');
      const rec = await fx.images.pull(`${registry.host}/private/app:v1`, { auth, serverAddress: `http://${registry.host}/v2/` });
      assert.equal(rec.id, img.configDigest);
    });

    it('uses image.credentials from the config', async () => {
      fx = await imageFixture((c) => {
        c.image.credentials[registry.host] = { username: 'alice', password: SECRET, auth: '', identity_token: '', registry_token: '' };
      });
      const rec = await fx.images.pull(`${registry.host}/private/app:v1`);
      assert.equal(rec.id, img.configDigest);
    });

    it('never writes credentials to the log, even at debug level', async () => {
      let logged = '';
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          logged += chunk.toString();
          cb();
        },
      });
      const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
      fx = await imageFixture(() => undefined, logger);
      await fx.images.pull(`${registry.host}/private/app:v1`, { username: 'alice', password: SECRET });
      await assert.rejects(fx.images.pull(`${registry.host}/private/app:v1`, { username: 'alice', password: SECRET + 'x' }));
      assert.match(logged, /image pulled/);
      assert.ok(!logged.includes(SECRET));
      assert.ok(!logged.includes(Buffer.from(`alice:${SECRET}`).toString('base64')));
    });

    it('reports wrong credentials without echoing them', async () => {
      fx = await imageFixture();
      await assert.rejects(
        fx.images.pull(`${registry.host}/private/app:v1`, { username: 'alice', password: SECRET + 'x' }),
        deniedWithoutLeak(/refused the credentials/),
      );
    });
  });

  describe('Bearer tokens', () => {
    let registry: TestRegistry;
    let img: PushedImage;
    before(async () => {
      registry = await TestRegistry.start();
      img = await new Pusher(registry.host).pushImage('tok/app', 'v1', { layers: [busyboxLayer()] });
    });
    after(async () => registry?.stop());

    it('gets a token with Basic credentials at the realm and caches it across pulls', async () => {
      const proxy = await TestProxy.start(registry.host, { bearer: { username: 'alice', password: SECRET } });
      try {
        fx = await imageFixture();
        const auth = { username: 'alice', password: SECRET };
        assert.equal((await fx.images.pull(`${proxy.host}/tok/app:v1`, auth)).id, img.configDigest);
        await fx.images.remove(img.configDigest);
        assert.equal((await fx.images.pull(`${proxy.host}/tok/app:v1`, auth)).id, img.configDigest);
        assert.equal(proxy.counts.tokenRequests, 1);
        await assert.rejects(fx.images.pull(`${proxy.host}/tok/app:v1`, { username: 'alice', password: 'nope' }), deniedWithoutLeak(/token service.*refused/));
      } finally {
        await proxy.stop();
      }
    });

    it('gets an anonymous token when no credentials are given', async () => {
      const proxy = await TestProxy.start(registry.host, { bearer: {} });
      try {
        fx = await imageFixture();
        assert.equal((await fx.images.pull(`${proxy.host}/tok/app:v1`)).id, img.configDigest);
        assert.ok(proxy.counts.tokenRequests >= 1);
      } finally {
        await proxy.stop();
      }
    });

    it('exchanges an identity token (refresh-token grant) and sends a registry token as is', async () => {
      const proxy = await TestProxy.start(registry.host, { bearer: { refreshToken: 'refresh-me' } });
      try {
        fx = await imageFixture();
        assert.equal((await fx.images.pull(`${proxy.host}/tok/app:v1`, { identityToken: 'refresh-me' })).id, img.configDigest);
        assert.equal(proxy.counts.tokenRequests, 1);
        await fx.cleanup();
        fx = await imageFixture();
        const token = proxy.issueToken();
        assert.equal((await fx.images.pull(`${proxy.host}/tok/app:v1`, { registryToken: token })).id, img.configDigest);
        assert.equal(proxy.counts.tokenRequests, 1, 'a registry token needs no token request');
      } finally {
        await proxy.stop();
      }
    });
  });

  describe('progress timeout', () => {
    let registry: TestRegistry;
    before(async () => {
      registry = await TestRegistry.start();
      await new Pusher(registry.host).pushImage('slow/app', 'v1', { layers: [busyboxLayer()] });
    });
    after(async () => registry?.stop());

    it('abandons a transfer that stops delivering bytes', async () => {
      const proxy = await TestProxy.start(registry.host, { stallBlobs: true });
      try {
        fx = await imageFixture((c) => {
          c.image.progress_timeout_seconds = 1;
        });
        await assert.rejects(fx.images.pull(`${proxy.host}/slow/app:v1`), (err: unknown) => {
          assert.ok(err instanceof BerthError);
          assert.equal(err.kind, 'DEADLINE_EXCEEDED', err.message);
          assert.match(err.message, /no data received for 1s/);
          return true;
        });
        assert.equal(fx.images.list().length, 0);
      } finally {
        await proxy.stop();
      }
    });
  });
});
