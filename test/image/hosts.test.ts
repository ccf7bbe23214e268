// containerd's hosts.toml, whole: every example of containerd's docs/hosts.md
// parses and means what the document says, the Docker certs.d layout, and
// pulls against TLS registries on loopback.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { hostDirFor, loadEndpoints, parseGoDuration, type RegistryEndpoint } from '../../src/registry/hosts';
import { busyboxLayer, Pusher, selfSignedCert, TestProxy, TestRegistry, type PushedImage, type TestCert } from '../helpers/registry';
import { imageFixture, writeHostsToml, type ImageFixture } from './fixture';

const summary = (e: RegistryEndpoint) => ({
  url: `${e.protocol}//${e.host}${e.apiPath}`,
  caps: [...e.capabilities].sort().join(','),
  mirror: e.mirror,
  ns: e.namespace,
});

const invalid = (re: RegExp) => (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT' && re.test(e.message);

describe('hosts.toml (containerd format, whole)', () => {
  let dir: string;
  let certs: string;
  let ca: TestCert;
  let client: TestCert;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-hosts-'));
    certs = path.join(dir, 'etc-certs');
    fs.mkdirSync(certs);
    ca = selfSignedCert(certs, 'ca');
    client = selfSignedCert(certs, 'client');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes a docs example into <dir>/<ns>/hosts.toml, with /etc/certs/ pointing at generated files. */
  const example = (ns: string, toml: string) => {
    fs.mkdirSync(path.join(dir, ns), { recursive: true });
    fs.writeFileSync(path.join(dir, ns, 'hosts.toml'), toml.replaceAll('/etc/certs/', `${certs}/`));
  };
  const copy = (from: string, to: string) => fs.copyFileSync(from, path.join(certs, to));
  const pem = (c: TestCert) => Buffer.concat([c.cert, c.key]);
  /** The files the docs' examples name under /etc/certs/. */
  const docsCertFiles = (special: TestCert, client2: TestCert) => {
    copy(ca.certPath, 'mirror.pem');
    copy(ca.certPath, 'test-1-ca.pem');
    copy(special.certPath, 'special.pem');
    copy(client.certPath, 'client.cert');
    copy(client.keyPath, 'client.key');
    fs.writeFileSync(path.join(certs, 'client.pem'), pem(client));
    fs.writeFileSync(path.join(certs, 'client-1.pem'), pem(client));
    fs.writeFileSync(path.join(certs, 'client-2.pem'), pem(client2));
  };

  describe("every example of containerd's docs/hosts.md", () => {
    it('"Simple (default) Host Config for Docker"', () => {
      example('docker.io', 'server = "https://docker.io"\n\n[host."https://registry-1.docker.io"]\n  capabilities = ["pull", "resolve"]\n');
      assert.deepEqual(loadEndpoints(dir, 'docker.io').map(summary), [
        { url: 'https://registry-1.docker.io/v2', caps: 'pull,resolve', mirror: true, ns: undefined },
        { url: 'https://docker.io/v2', caps: 'pull,push,resolve', mirror: false, ns: undefined },
      ]);
    });

    it('"Setup a Local Mirror for Docker": pull from both mirrors, resolve only where trusted', () => {
      example(
        'docker.io',
        [
          'server = "https://registry-1.docker.io"    # Exclude this to not use upstream',
          '',
          '[host."https://public-mirror.example.com"]',
          '  capabilities = ["pull"]                  # Requires less trust, won\'t resolve tag to digest from this host',
          '[host."https://docker-mirror.internal"]',
          '  capabilities = ["pull", "resolve"]',
          '  ca = "docker-mirror.crt"                 # Or absolute path /etc/containerd/certs.d/docker.io/docker-mirror.crt',
        ].join('\n'),
      );
      fs.copyFileSync(ca.certPath, path.join(dir, 'docker.io', 'docker-mirror.crt'));
      const eps = loadEndpoints(dir, 'docker.io');
      assert.deepEqual(eps.map(summary), [
        { url: 'https://public-mirror.example.com/v2', caps: 'pull', mirror: true, ns: 'docker.io' },
        { url: 'https://docker-mirror.internal/v2', caps: 'pull,resolve', mirror: true, ns: 'docker.io' },
        { url: 'https://registry-1.docker.io/v2', caps: 'pull,push,resolve', mirror: false, ns: undefined },
      ]);
      assert.deepEqual(eps[1].tls.ca, [ca.cert], 'a relative ca is read next to hosts.toml');
    });

    it('"Setup Default Mirror for All Registries": the mirror, then the upstream; or only the server', () => {
      example('_default', '[host."https://registry.example.com"]\n  capabilities = ["pull", "resolve"]\n');
      assert.deepEqual(loadEndpoints(dir, 'quay.io').map(summary), [
        { url: 'https://registry.example.com/v2', caps: 'pull,resolve', mirror: true, ns: 'quay.io' },
        { url: 'https://quay.io/v2', caps: 'pull,push,resolve', mirror: false, ns: undefined },
      ]);
      example('_default', 'server = "https://registry.example.com"\n');
      assert.deepEqual(loadEndpoints(dir, 'quay.io').map(summary), [{ url: 'https://registry.example.com/v2', caps: 'pull,push,resolve', mirror: false, ns: 'quay.io' }]);
    });

    it('"Bypass TLS Verification Example": an http:// host with skip_verify is tried over HTTPS without verification first', () => {
      example('docker.io', 'server = "https://registry-1.docker.io"\n\n[host."http://192.168.31.250:5000"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n');
      const [mirror] = loadEndpoints(dir, 'docker.io');
      assert.equal(mirror.protocol, 'https:');
      assert.equal(mirror.httpFallback, true);
      assert.equal(mirror.tls.rejectUnauthorized, false);
      assert.equal(mirror.host, '192.168.31.250:5000');
    });

    it('the field snippets: server, capabilities, ca, client (three forms), skip_verify, header, override_path, dial_timeout', () => {
      docsCertFiles(client, ca);
      const top = (body: string) => {
        example('reg.example', `server = "https://docker.io"\n${body}\n`);
        return loadEndpoints(dir, 'reg.example')[0];
      };
      assert.equal(top('capabilities =  ["pull", "resolve", "push"]').capabilities.size, 3);
      assert.deepEqual(top('ca = "/etc/certs/mirror.pem"').tls.ca, [ca.cert]);
      assert.deepEqual(top('ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]').tls.ca, [ca.cert, client.cert]);
      assert.deepEqual(top('client = "/etc/certs/client.pem"').tls.clients, [{ cert: client.cert, key: client.key }]);
      assert.deepEqual(top('client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]').tls.clients, [
        { cert: client.cert, key: client.key },
        { cert: ca.cert, key: ca.key },
      ]);
      assert.deepEqual(top('client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]').tls.clients, [
        { cert: client.cert, key: client.key },
        { cert: client.cert, key: client.key },
      ]);
      assert.equal(top('skip_verify = false').tls.rejectUnauthorized, true);
      assert.deepEqual(top('[header]\n  x-custom-1 = "custom header"').headers, { 'x-custom-1': ['custom header'] });
      assert.deepEqual(top('[header]\n  x-custom-1 = ["custom header part a","part b"]').headers, { 'x-custom-1': ['custom header part a', 'part b'] });
      assert.deepEqual(top('[header]\n  x-custom-1 = "custom header"\n  x-custom-1-2 = "another custom header"').headers, {
        'x-custom-1': ['custom header'],
        'x-custom-1-2': ['another custom header'],
      });
      example('reg.example', 'server = "https://legacy.example/api"\noverride_path = true\n');
      assert.equal(summary(loadEndpoints(dir, 'reg.example')[0]).url, 'https://legacy.example/api');
      assert.equal(top('dial_timeout = "1s"').dialTimeoutMs, 1000);
    });

    it('the [host] examples: headers, paths, plain HTTP, CA lists, client pairs, override_path', () => {
      docsCertFiles(ca, client);
      example(
        'docker.io',
        `[host."https://mirror.registry"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  skip_verify = false
  [host."https://mirror.registry".header]
    x-custom-2 = ["value1", "value2"]

[host."https://mirror-bak.registry/us"]
  capabilities = ["pull"]
  skip_verify = true

[host."http://mirror.registry"]
  capabilities = ["pull"]

[host."https://test-1.registry"]
  capabilities = ["pull", "resolve", "push"]
  ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]

[host."https://test-2.registry"]
  client = "/etc/certs/client.pem"

[host."https://test-3.registry"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://non-compliant-mirror.registry/v2/upstream"]
  capabilities = ["pull"]
  override_path = true
`,
      );
      const eps = loadEndpoints(dir, 'docker.io');
      assert.deepEqual(
        eps.map((e) => [summary(e).url, summary(e).caps, e.httpFallback]),
        [
          ['https://mirror.registry/v2', 'pull', false],
          ['https://mirror-bak.registry/us/v2', 'pull', false],
          ['http://mirror.registry/v2', 'pull', false],
          ['https://test-1.registry/v2', 'pull,push,resolve', false],
          ['https://test-2.registry/v2', 'pull,push,resolve', false],
          ['https://test-3.registry/v2', 'pull,push,resolve', false],
          ['https://non-compliant-mirror.registry/v2/upstream', 'pull', false],
          ['https://registry-1.docker.io/v2', 'pull,push,resolve', false],
        ],
      );
      assert.deepEqual(eps[0].headers, { 'x-custom-2': ['value1', 'value2'] });
      assert.equal(eps[0].tls.rejectUnauthorized, true);
      assert.equal(eps[1].tls.rejectUnauthorized, false);
      assert.equal(eps[3].tls.ca?.length, 2);
      assert.equal(eps[3].tls.clients?.length, 2);
      assert.equal(eps[4].tls.clients?.length, 1);
      assert.equal(eps[5].tls.clients?.length, 2);
    });

    it('the "recursion is not supported" example: the indented table is a sibling host (TOML ignores indentation), never a mirror of a mirror', () => {
      example(
        'docker.io',
        '[host."http://mirror.registry"]\n  capabilities = ["pull"]\n  [host."http://double-mirror.registry"]\n    capabilities = ["pull"]\n',
      );
      assert.deepEqual(loadEndpoints(dir, 'docker.io').map(summary), [
        { url: 'http://mirror.registry/v2', caps: 'pull', mirror: true, ns: 'docker.io' },
        { url: 'http://double-mirror.registry/v2', caps: 'pull', mirror: true, ns: 'docker.io' },
        { url: 'https://registry-1.docker.io/v2', caps: 'pull,push,resolve', mirror: false, ns: undefined },
      ]);
    });
  });

  it('finds host_port_ before host:port before _default, and a directory without hosts.toml counts', () => {
    for (const d of ['_default', 'reg.example:5000', 'reg.example_5000_']) fs.mkdirSync(path.join(dir, d));
    assert.equal(hostDirFor(dir, 'reg.example:5000'), path.join(dir, 'reg.example_5000_'));
    fs.rmdirSync(path.join(dir, 'reg.example_5000_'));
    assert.equal(hostDirFor(dir, 'reg.example:5000'), path.join(dir, 'reg.example:5000'));
    fs.rmdirSync(path.join(dir, 'reg.example:5000'));
    assert.equal(hostDirFor(dir, 'reg.example:5000'), path.join(dir, '_default'));
    assert.equal(hostDirFor(dir, 'other.example'), path.join(dir, '_default'));
  });

  it("reads Docker's layout when there is no hosts.toml: *.crt CAs, *.cert + *.key clients", () => {
    const d = path.join(dir, 'reg.example');
    fs.mkdirSync(d);
    fs.copyFileSync(ca.certPath, path.join(d, 'ca.crt'));
    fs.copyFileSync(client.certPath, path.join(d, 'client.cert'));
    fs.copyFileSync(client.keyPath, path.join(d, 'client.key'));
    fs.writeFileSync(path.join(d, 'both.cert'), pem(ca));
    fs.writeFileSync(path.join(d, 'hosts.toml'), '');
    const [ep] = loadEndpoints(dir, 'reg.example');
    assert.equal(summary(ep).url, 'https://reg.example/v2');
    assert.deepEqual(ep.tls.ca, [ca.cert]);
    assert.deepEqual(ep.tls.clients, [
      { cert: ca.cert, key: ca.key },
      { cert: client.cert, key: client.key },
    ]);
  });

  it('refuses what containerd refuses, naming the file and the key', () => {
    const bad = (body: string, re: RegExp) => {
      example('bad.example', body);
      assert.throws(() => loadEndpoints(dir, 'bad.example'), invalid(re));
    };
    bad('[host."ftp://x"]\n', /hosts\.toml.*http or https/);
    bad('ca = 5\n', /"ca" must be a string or an array of strings/);
    bad('client = [["a"]]\n', /invalid pair \["a"\] for "client"/);
    bad('client = "missing.pem"\n', /cannot read client certificate .*missing\.pem/);
    bad('[host."https://m"]\n  capabilities = ["pull", "fly"]\n', /\[host\."https:\/\/m"\]: unknown capability "fly"/);
    bad('dial_timeout = "soon"\n', /"dial_timeout" must be a duration/);
    bad('skip_verify = "yes"\n', /"skip_verify" must be true or false/);
    bad('[header]\n  x = 1\n', /"header\.x" must be a string/);
    fs.copyFileSync(ca.certPath, path.join(certs, 'c.pem'));
    bad(`client = [["${certs}/c.pem", "${client.keyPath}"]]\n`, /the key does not match the certificate/);
    bad(`client = "${ca.certPath}"\n`, /no private key found/);
  });

  it('parses Go durations as containerd does for dial_timeout', () => {
    assert.equal(parseGoDuration('1s'), 1000);
    assert.equal(parseGoDuration('500ms'), 500);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('1.5h'), 5_400_000);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('10'), undefined);
    assert.equal(parseGoDuration(''), undefined);
  });
});

describe('hosts.toml against registries on loopback', function () {
  this.timeout(60_000);
  let registry: TestRegistry;
  let app: PushedImage;
  let fx: ImageFixture;
  const stops: Array<() => Promise<void> | void> = [];

  before(async () => {
    registry = await TestRegistry.start();
    app = await new Pusher(registry.host).pushImage('test/app', 'v1', { layers: [busyboxLayer()] });
  });
  after(async () => {
    await registry?.stop();
  });
  beforeEach(async () => {
    fx = await imageFixture();
  });
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
    await fx?.cleanup();
  });

  const tlsProxy = async (clientCa?: Buffer): Promise<{ proxy: TestProxy; server: TestCert }> => {
    const server = selfSignedCert(fx.dir, `server${stops.length}`);
    const proxy = await TestProxy.start(registry.host, { tls: { key: server.key, cert: server.cert, clientCa } });
    stops.push(() => proxy.stop());
    return { proxy, server };
  };

  it('sends ?ns=<registry> and the [header] values to a mirror', async () => {
    const mirror = await TestProxy.start(registry.host);
    stops.push(() => mirror.stop());
    writeHostsToml(
      fx.config,
      'registry.invalid',
      `server = "http://${mirror.host}"\n[header]\n  x-top = "t"\n[host."http://${mirror.host}/"]\n  capabilities = ["pull", "resolve"]\n  [host."http://${mirror.host}/".header]\n    x-custom = ["a", "b"]\n`,
    );
    assert.equal((await fx.images.pull('registry.invalid/test/app:v1')).id, app.configDigest);
    const v2 = mirror.seen.filter((s) => /\/(manifests|blobs)\//.test(s.url));
    assert.ok(v2.length >= 3, JSON.stringify(mirror.seen.map((s) => s.url)));
    for (const s of v2) {
      assert.match(s.url, /\?ns=registry\.invalid$/, s.url);
      assert.equal(s.headers['x-custom'], 'a, b');
    }
  });

  it('sends no ns= to the registry itself', async () => {
    const front = await TestProxy.start(registry.host);
    stops.push(() => front.stop());
    writeHostsToml(fx.config, front.host, `server = "http://${front.host}"\n`);
    await fx.images.pull(`${front.host}/test/app:v1`);
    assert.ok(front.seen.length > 0);
    assert.ok(front.seen.every((s) => !s.url.includes('ns=')), JSON.stringify(front.seen.map((s) => s.url)));
  });

  it("serves a TLS registry from Docker's certs.d layout (ca.crt, client.cert, client.key) in host_port_", async () => {
    const client = selfSignedCert(fx.dir, 'client');
    const { proxy, server } = await tlsProxy(client.cert);
    const ref = `${proxy.host}/test/app:v1`;
    const d = path.join(fx.config.image.registry_config_dir, proxy.host.replace(':', '_') + '_');
    fs.mkdirSync(d, { recursive: true });
    fs.copyFileSync(server.certPath, path.join(d, 'ca.crt'));
    await assert.rejects(fx.images.pull(ref), (e: unknown) => e instanceof BerthError && e.kind === 'UNAVAILABLE', 'no client certificate yet');
    fs.copyFileSync(client.certPath, path.join(d, 'client.cert'));
    fs.copyFileSync(client.keyPath, path.join(d, 'client.key'));
    assert.equal((await fx.images.pull(ref)).id, app.configDigest);
  });

  it('offers the first client certificate of each key type from a list of pairs', async () => {
    const other = selfSignedCert(fx.dir, 'other');
    const good = selfSignedCert(fx.dir, 'good');
    const { proxy, server } = await tlsProxy(good.cert);
    const pairs = (a: TestCert, b: TestCert) => `[["${a.certPath}", "${a.keyPath}"], ["${b.certPath}", "${b.keyPath}"]]`;
    writeHostsToml(fx.config, 'tls.invalid', `server = "https://${proxy.host}"\nca = "${server.certPath}"\nclient = ${pairs(good, other)}\n`);
    assert.equal((await fx.images.pull('tls.invalid/test/app:v1')).id, app.configDigest);
    // Both are EC keys: OpenSSL holds one per type, so the second is never offered (Go would choose by the server's CAs).
    writeHostsToml(fx.config, 'tls2.invalid', `server = "https://${proxy.host}"\nca = "${server.certPath}"\nclient = ${pairs(other, good)}\n`);
    await assert.rejects(fx.images.pull('tls2.invalid/test/app:v1'), (e: unknown) => e instanceof BerthError && e.kind === 'UNAVAILABLE');
  });

  it('an http:// host with TLS settings speaks HTTPS to a TLS registry and falls back to HTTP for a plain one', async () => {
    const { proxy } = await tlsProxy();
    writeHostsToml(fx.config, 'a.invalid', `[host."http://${proxy.host}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`);
    assert.equal((await fx.images.pull('a.invalid/test/app:v1')).id, app.configDigest);
    assert.ok(proxy.seen.length > 0, 'the TLS registry was used');
    const plain = await TestProxy.start(registry.host);
    stops.push(() => plain.stop());
    writeHostsToml(fx.config, 'b.invalid', `server = "http://${plain.host}"\nskip_verify = true\n`);
    assert.equal((await fx.images.pull('b.invalid/test/app:v1')).id, app.configDigest);
    assert.ok(plain.seen.some((s) => s.url.includes('/manifests/')));
  });

  it('verifies the registry against the hosts.toml CA, name included', async () => {
    const { proxy, server } = await tlsProxy();
    writeHostsToml(fx.config, 'c.invalid', `server = "https://${proxy.host.replace('127.0.0.1', 'localhost')}"\nca = "${server.certPath}"\n`);
    await assert.rejects(fx.images.pull('c.invalid/test/app:v1'), (e: unknown) => e instanceof BerthError && /altnames|does not match|localhost/i.test(e.message));
    writeHostsToml(fx.config, 'c.invalid', `server = "https://${proxy.host}"\nca = "${server.certPath}"\n`);
    assert.equal((await fx.images.pull('c.invalid/test/app:v1')).id, app.configDigest);
  });

  it('gives up a connection after dial_timeout and says so', async () => {
    // A listener with a full accept queue: the kernel drops further SYNs, so connecting hangs.
    const py: ChildProcess = spawn('python3', ['-c', "import socket,sys,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nprint(s.getsockname()[1], flush=True)\nsys.stdin.read()"], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    stops.push(() => {
      py.stdin?.end();
      if (py.pid) process.kill(py.pid, 'SIGTERM');
    });
    const port = await new Promise<number>((r) => py.stdout?.once('data', (b: Buffer) => r(Number(b.toString().trim()))));
    const net = await import('node:net');
    const filler = net.connect(port, '127.0.0.1');
    stops.push(() => void filler.destroy());
    await new Promise((r) => filler.once('connect', r));
    writeHostsToml(fx.config, 'd.invalid', `server = "http://127.0.0.1:${port}"\ndial_timeout = "200ms"\n`);
    await assert.rejects(fx.images.pull('d.invalid/test/app:v1'), (e: unknown) => e instanceof BerthError && e.kind === 'UNAVAILABLE' && /dial_timeout \(200 ms\)/.test(e.message));
  });
});
