import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { ProxyConfig } from '../../src/registry/proxy';
import { ImageService } from '../../src/image/service';
import { silentLogger } from '../../src/log/logger';
import { Registry } from 'prom-client';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { busyboxLayer, makeLayer, Pusher, selfSignedCert, TestProxy, TestRegistry, type PushedImage } from '../helpers/registry';
import { externalIPv4, Tinyproxy } from '../helpers/tinyproxy';
import { imageFixture, writeHostsToml, type ImageFixture } from './fixture';

describe('registry proxies (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)', function () {
  describe('which URLs go through which proxy', () => {
    const via = (env: ConstructorParameters<typeof ProxyConfig>[0], url: string) => new ProxyConfig(env).proxyFor(new URL(url))?.href;

    it('uses HTTPS_PROXY for https and HTTP_PROXY for http, upper case first, http:// when no scheme', () => {
      const env = { HTTP_PROXY: 'http://p1:3128', https_proxy: 'p2:8080', HTTPS_PROXY: '' };
      assert.equal(via(env, 'http://reg.example/v2/'), 'http://p1:3128/');
      assert.equal(via(env, 'https://reg.example/v2/'), 'http://p2:8080/');
      assert.equal(via({ HTTPS_PROXY: 'https://up:1', https_proxy: 'http://low:2' }, 'https://r/'), 'https://up:1/');
      assert.equal(via({ HTTP_PROXY: 'http://p:1' }, 'https://r/'), undefined, 'HTTP_PROXY does not serve https');
      assert.equal(via({}, 'https://r/'), undefined);
      assert.throws(() => new ProxyConfig({ HTTPS_PROXY: 'socks5://p:1080' }), /HTTPS_PROXY=socks5:\/\/p:1080: only http:\/\/ and https:\/\/ proxies/);
    });

    it('never proxies localhost or loopback addresses', () => {
      const env = { HTTP_PROXY: 'http://p:1', HTTPS_PROXY: 'http://p:1' };
      for (const u of ['http://localhost:5000/', 'https://127.0.0.1/', 'http://127.9.9.9:80/', 'https://[::1]:5000/', 'http://[::ffff:127.0.0.1]/']) {
        assert.equal(via(env, u), undefined, u);
      }
      assert.equal(via(env, 'http://localhost.example/'), 'http://p:1/');
    });

    it('honours NO_PROXY hosts, domains, wildcards, CIDRs, IPs and ports as Go does', () => {
      const NO_PROXY = 'internal.example, .sub.example,*.wild.example, 10.0.0.0/8 ,192.168.1.5, fd00::/64, [fd01::1]:5000, ports.example:5000, 172.16.0.1:443';
      const env = { HTTPS_PROXY: 'http://p:1', HTTP_PROXY: 'http://p:1', no_proxy: NO_PROXY };
      const direct = [
        'https://internal.example/', 'https://a.b.internal.example/', 'https://x.sub.example/', 'https://x.wild.example/',
        'https://10.1.2.3:5000/', 'http://192.168.1.5/', 'https://[fd00::abcd]/', 'https://[fd01::1]:5000/',
        'http://ports.example:5000/', 'https://a.ports.example:5000/', 'https://172.16.0.1/',
      ];
      const proxied = [
        'https://notinternal.example/', 'https://sub.example/', 'https://wild.example/', 'https://11.0.0.1/', 'http://192.168.1.6/',
        'https://[fd00:0:0:1::1]/', 'https://[fd01::1]:5001/', 'https://ports.example/', 'http://172.16.0.1/', 'https://reg.example/',
      ];
      for (const u of direct) assert.equal(via(env, u), undefined, `${u} should be direct`);
      for (const u of proxied) assert.equal(via(env, u), 'http://p:1/', `${u} should be proxied`);
      assert.equal(via({ ...env, NO_PROXY: '*' }, 'https://reg.example/'), undefined, 'NO_PROXY=* (upper case wins)');
      assert.equal(via({ HTTPS_PROXY: 'http://p:1', NO_PROXY: ':443, ,' }, 'https://reg.example/'), 'http://p:1/', 'malformed entries are ignored');
    });
  });

  describe('pulls through a real proxy (tinyproxy)', function () {
    this.timeout(60_000);
    const ip = externalIPv4();
    let registry: TestRegistry;
    let app: PushedImage;
    let front: TestProxy;
    let fx: ImageFixture | undefined;
    let proxy: Tinyproxy | undefined;

    const withProxyEnv = async (env: ConstructorParameters<typeof ProxyConfig>[0]): Promise<ImageFixture> => {
      fx = await imageFixture();
      // The fixture's service has no proxies; reopen it with these.
      fx.images.close();
      fx.images = await ImageService.open(fx.config, silentLogger(), fx.snapshotter, {
        registryBackoffMs: 20,
        registryAttempts: 2,
        proxies: new ProxyConfig(env),
        metrics: new RuntimeMetrics(new Registry()),
      });
      return fx;
    };

    before(async function () {
      // Go (and so containerd) never proxies loopback, so the registry must be reachable at another address.
      if (!ip) this.skip();
      registry = await TestRegistry.start();
      app = await new Pusher(registry.host).pushImage('test/app', 'v1', { layers: [busyboxLayer(), makeLayer({ 'etc/x': 'x\n' })] });
    });
    after(async () => {
      await registry?.stop();
    });
    afterEach(async () => {
      await fx?.cleanup();
      fx = undefined;
      await proxy?.stop();
      proxy = undefined;
      await front?.stop();
    });

    it('sends plain-HTTP registry and token requests to HTTP_PROXY in absolute form', async () => {
      front = await TestProxy.start(registry.host, { listenAddress: ip, bearer: {} });
      proxy = await Tinyproxy.start();
      const f = await withProxyEnv({ HTTP_PROXY: proxy.url, HTTPS_PROXY: 'http://127.0.0.1:9' });
      writeHostsToml(f.config, front.host, `server = "http://${front.host}"\n`);
      const img = await f.images.pull(`${front.host}/test/app:v1`);
      assert.equal(img.id, app.configDigest);
      const seen = proxy.requests();
      assert.ok(seen.includes(`GET http://${front.host}/v2/test/app/manifests/v1`), seen.join('\n'));
      assert.ok(seen.some((r) => r.startsWith(`GET http://${front.host}/token?`)), 'the token request went through the proxy');
      for (const l of app.layers) assert.ok(seen.includes(`GET http://${front.host}/v2/test/app/blobs/${l.digest}`), l.digest);
      assert.ok(front.counts.tokenRequests >= 1);
    });

    it('tunnels HTTPS with CONNECT and still verifies the registry certificate end to end', async () => {
      const cert = selfSignedCert(registryDir(), 'srv', [ip ?? '']);
      front = await TestProxy.start(registry.host, { listenAddress: ip, tls: { key: cert.key, cert: cert.cert } });
      proxy = await Tinyproxy.start();
      const f = await withProxyEnv({ HTTPS_PROXY: proxy.url, HTTP_PROXY: 'http://127.0.0.1:9' });
      writeHostsToml(f.config, front.host, '');
      const ref = `${front.host}/test/app:v1`;
      await assert.rejects(f.images.pull(ref), (e: unknown) => e instanceof BerthError && /through proxy 127\.0\.0\.1:\d+.*certificate/i.test(e.message));
      writeHostsToml(f.config, front.host, `ca = ${JSON.stringify(cert.certPath)}\n`);
      assert.equal((await f.images.pull(ref)).id, app.configDigest);
      const seen = proxy.requests();
      assert.ok(seen.includes(`CONNECT ${front.host}`), seen.join('\n'));
      assert.ok(!seen.some((r) => r.startsWith('GET')), 'no request was sent to the proxy in clear');
    });

    it('goes direct for NO_PROXY matches (IP, CIDR, host:port) and through the proxy otherwise', async () => {
      front = await TestProxy.start(registry.host, { listenAddress: ip });
      proxy = await Tinyproxy.start();
      const port = front.host.split(':')[1];
      const cidr = `${(ip ?? '').split('.').slice(0, 3).join('.')}.0/24`;
      for (const noProxy of [ip ?? '', cidr, `${ip}:${port}`]) {
        const f = await withProxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: noProxy });
        writeHostsToml(f.config, front.host, `server = "http://${front.host}"\n`);
        assert.equal((await f.images.pull(`${front.host}/test/app:v1`)).id, app.configDigest, noProxy);
        await f.cleanup();
        fx = undefined;
      }
      assert.deepEqual(proxy.requests(), []);
      const f = await withProxyEnv({ HTTP_PROXY: proxy.url, NO_PROXY: `${ip}:1,other.example` });
      writeHostsToml(f.config, front.host, `server = "http://${front.host}"\n`);
      await f.images.pull(`${front.host}/test/app:v1`);
      assert.ok(proxy.requests().length > 0, 'a NO_PROXY entry for another port does not match');
    });

    it('authenticates to the proxy with the credentials in its URL, and says so when they are refused', async () => {
      const cert = selfSignedCert(registryDir(), 'srv', [ip ?? '']);
      front = await TestProxy.start(registry.host, { listenAddress: ip, tls: { key: cert.key, cert: cert.cert } });
      proxy = await Tinyproxy.start({ auth: { username: 'node', password: 's3cret' } });
      const good = `http://node:s3cret@127.0.0.1:${proxy.port}`;
      let f = await withProxyEnv({ HTTPS_PROXY: good });
      writeHostsToml(f.config, front.host, `ca = ${JSON.stringify(cert.certPath)}\n`);
      assert.equal((await f.images.pull(`${front.host}/test/app:v1`)).id, app.configDigest);
      await f.cleanup();
      f = await withProxyEnv({ HTTPS_PROXY: `http://node:wrong@127.0.0.1:${proxy.port}` });
      writeHostsToml(f.config, front.host, `ca = ${JSON.stringify(cert.certPath)}\n`);
      await assert.rejects(f.images.pull(`${front.host}/test/app:v1`), (e: unknown) => {
        assert.ok(e instanceof BerthError);
        assert.match(e.message, /proxy 127\.0\.0\.1:\d+ refused CONNECT .*(401|407)/);
        assert.doesNotMatch(e.message, /wrong/, 'the proxy password is never printed');
        return true;
      });
    });

    it('fails with UNAVAILABLE naming the proxy when it is down', async () => {
      front = await TestProxy.start(registry.host, { listenAddress: ip });
      const f = await withProxyEnv({ HTTP_PROXY: 'http://127.0.0.1:9' });
      writeHostsToml(f.config, front.host, `server = "http://${front.host}"\n`);
      await assert.rejects(f.images.pull(`${front.host}/test/app:v1`), (e: unknown) => e instanceof BerthError && e.kind === 'UNAVAILABLE' && /through proxy 127\.0\.0\.1:9.*ECONNREFUSED/.test(e.message));
    });

    const certDirs: string[] = [];
    function registryDir(): string {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-proxy-cert-'));
      certDirs.push(d);
      return d;
    }
    after(() => {
      for (const d of certDirs) fs.rmSync(d, { recursive: true, force: true });
    });
  });
});
