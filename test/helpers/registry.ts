// Test registries: a real docker-registry (Debian's /usr/bin/docker-registry)
// on loopback, a pusher speaking the v2 upload API, images built from
// busybox-static, and small Node servers for what docker-registry cannot do:
// a Bearer token service, a proxy that cuts or corrupts blobs, a fake
// registry serving arbitrary manifests.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function freePort(): Promise<number> {
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A bcrypt htpasswd line, made with the C library's crypt(3) through perl (perl-base is always installed). */
export function htpasswdLine(user: string, password: string): string {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let salt = '';
  for (const b of randomBytes(21)) salt += alphabet[b % 64];
  salt += '.'; // the 22nd character only carries 2 bits; '.' keeps them zero
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2y$05$${salt}`]).toString();
  if (!hash.startsWith('$2')) throw new Error(`crypt(3) has no bcrypt here: got ${hash}`);
  return `${user}:${hash}`;
}

export interface BasicUser {
  username: string;
  password: string;
}

export class TestRegistry {
  private constructor(
    readonly host: string,
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly auth?: BasicUser,
  ) {}

  /** Starts docker-registry on 127.0.0.1:<free port>, optionally with htpasswd (bcrypt) auth. */
  static async start(opts: { auth?: BasicUser } = {}): Promise<TestRegistry> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-registry-'));
    const port = await freePort();
    const lines = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
    ];
    if (opts.auth) {
      fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswdLine(opts.auth.username, opts.auth.password) + '\n');
      lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${path.join(dir, 'htpasswd')}`);
    }
    fs.writeFileSync(path.join(dir, 'config.yml'), lines.join('\n') + '\n');
    const proc = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const reg = new TestRegistry(`127.0.0.1:${port}`, proc, dir, opts.auth);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}: ${stderr}`);
      try {
        const res = await request({ method: 'GET', url: `http://${reg.host}/v2/` });
        if (res.status === 200 || res.status === 401) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return reg;
  }

  get authorization(): string | undefined {
    return this.auth ? 'Basic ' + Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64') : undefined;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface SimpleResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function request(opts: { method: string; url: string; headers?: Record<string, string>; body?: Buffer }): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(opts.url, { method: opts.method, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface Layer {
  /** gzip-compressed tar, as pushed. */
  blob: Buffer;
  digest: string;
  diffId: string;
  mediaType: string;
}

/** A gzip layer holding the given files (path -> content), symlinks and (empty) directories. */
export function makeLayer(files: Record<string, Buffer | string | { symlink: string } | { copyOf: string } | { dir: true }>): Layer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-layer-'));
  try {
    for (const [name, content] of Object.entries(files)) {
      const p = path.join(dir, name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      if (typeof content === 'object' && 'dir' in content) fs.mkdirSync(p, { recursive: true });
      else if (typeof content === 'object' && 'symlink' in content) fs.symlinkSync(content.symlink, p);
      else if (typeof content === 'object' && 'copyOf' in content) fs.copyFileSync(content.copyOf, p);
      else fs.writeFileSync(p, content);
      if (name.startsWith('bin/')) fs.chmodSync(p, 0o755);
    }
    const tar = execFileSync('tar', ['--sort=name', '--numeric-owner', '--owner=0', '--group=0', '-C', dir, '-cf', '-', '.'], {
      maxBuffer: 256 * 1024 * 1024,
    });
    const blob = zlib.gzipSync(tar);
    return { blob, digest: sha256(blob), diffId: sha256(tar), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A gzip layer from a tar built by hand (test/helpers/tar_writer.ts), hostile ones included. */
export function layerFromTar(tar: Buffer): Layer {
  const blob = zlib.gzipSync(tar);
  return { blob, digest: sha256(blob), diffId: sha256(tar), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' };
}

/** A base layer with /bin/busybox (busybox-static) and /bin/sh. */
export function busyboxLayer(): Layer {
  return makeLayer({ 'bin/busybox': { copyOf: '/bin/busybox' }, 'bin/sh': { symlink: 'busybox' } });
}

export interface PushedImage {
  name: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  layers: Layer[];
  config: Buffer;
  manifest: Buffer;
}

export interface ImageSpecForPush {
  layers: Layer[];
  config?: Record<string, unknown>;
  architecture?: string;
  manifestMediaType?: 'docker' | 'oci';
}

function configDoc(spec: ImageSpecForPush): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: spec.architecture ?? 'amd64',
      os: 'linux',
      config: spec.config ?? { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
      history: spec.layers.map(() => ({ created_by: 'berth test' })),
    }),
  );
}

/** Pushes images with the registry v2 upload API (POST uploads, PUT ?digest=, PUT manifest). */
export class Pusher {
  constructor(
    readonly host: string,
    private readonly authorization?: string,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, ...(this.authorization ? { Authorization: this.authorization } : {}) };
  }

  async pushBlob(name: string, blob: Buffer): Promise<string> {
    const digest = sha256(blob);
    const start = await request({ method: 'POST', url: `http://${this.host}/v2/${name}/blobs/uploads/`, headers: this.headers() });
    if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body.toString()}`);
    const loc = new URL(String(start.headers.location), `http://${this.host}`);
    loc.searchParams.set('digest', digest);
    const put = await request({
      method: 'PUT',
      url: loc.toString(),
      headers: this.headers({ 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.length) }),
      body: blob,
    });
    if (put.status !== 201) throw new Error(`upload put: ${put.status} ${put.body.toString()}`);
    return digest;
  }

  async pushManifest(name: string, reference: string, mediaType: string, body: Buffer): Promise<string> {
    const res = await request({
      method: 'PUT',
      url: `http://${this.host}/v2/${name}/manifests/${reference}`,
      headers: this.headers({ 'Content-Type': mediaType }),
      body,
    });
    if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${res.body.toString()}`);
    return sha256(body);
  }

  /** Pushes layers, config and manifest; tags it `tag` (or pushes by digest only if tag is ''). */
  async pushImage(name: string, tag: string, spec: ImageSpecForPush): Promise<PushedImage> {
    const oci = spec.manifestMediaType === 'oci';
    const config = configDoc(spec);
    for (const l of spec.layers) await this.pushBlob(name, l.blob);
    const configDigest = await this.pushBlob(name, config);
    const mediaType = oci ? 'application/vnd.oci.image.manifest.v1+json' : 'application/vnd.docker.distribution.manifest.v2+json';
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: oci ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', digest: configDigest, size: config.length },
        layers: spec.layers.map((l) => ({
          mediaType: oci ? 'application/vnd.oci.image.layer.v1.tar+gzip' : l.mediaType,
          digest: l.digest,
          size: l.blob.length,
        })),
      }),
    );
    const manifestDigest = await this.pushManifest(name, tag || sha256(manifest), mediaType, manifest);
    return { name, tag, manifestDigest, configDigest, layers: spec.layers, config, manifest };
  }

  /** Pushes an OCI index over already pushed manifests. */
  async pushIndex(name: string, tag: string, entries: Array<{ image: PushedImage; architecture: string; variant?: string }>): Promise<string> {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: entries.map((e) => ({
          mediaType: JSON.parse(e.image.manifest.toString()).mediaType as string,
          digest: e.image.manifestDigest,
          size: e.image.manifest.length,
          platform: { os: 'linux', architecture: e.architecture, ...(e.variant ? { variant: e.variant } : {}) },
        })),
      }),
    );
    return this.pushManifest(name, tag, 'application/vnd.oci.image.index.v1+json', index);
  }
}

export interface ProxyOptions {
  /** Require `Authorization: Bearer <token>` issued by this proxy's /token endpoint. */
  bearer?: { username?: string; password?: string; expiresIn?: number; refreshToken?: string };
  /** Cut the connection halfway through the first N blob downloads (larger than 1 KiB). */
  cutBlobs?: number;
  /** Where to cut, as a fraction of the response (default 0.5; 0 cuts right after the headers). */
  cutFraction?: number;
  /** Serve HTTPS with this key and certificate; with `clientCa`, demand a client certificate it signed. */
  tls?: { key: Buffer; cert: Buffer; clientCa?: Buffer };
  /** Hold every blob request this long before forwarding it. */
  blobDelayMs?: number;
  /** Answer the first N manifest and blob requests with 503. */
  serverErrors?: number;
  /** Send half of each blob larger than 1 KiB, then go silent (connection kept open). */
  stallBlobs?: boolean;
  /** Flip a byte in every blob download larger than 1 KiB. */
  corruptBlobs?: boolean;
  /** Flip a byte in the downloads of this one blob (larger than 1 KiB). */
  corruptBlob?: string;
  /** Hold the requests for this one blob until `until` resolves. */
  holdBlob?: { digest: string; until: Promise<unknown> };
  /** Redirect blob GETs to this origin (e.g. the same proxy under another host name). */
  redirectBlobsTo?: string;
  /** Address to listen on (default 127.0.0.1); proxies never carry loopback traffic, so proxy tests need another. */
  listenAddress?: string;
}

/**
 * A reverse proxy in front of a registry that can demand Bearer tokens,
 * drop or corrupt blob downloads, redirect blobs, and counts what it sees.
 */
export class TestProxy {
  readonly counts = { tokenRequests: 0, blobGets: new Map<string, number>(), manifestGets: 0, serverErrors: 0 };
  readonly authorizationsOnBlobs: Array<string | undefined> = [];
  /** Every request seen: the URL as sent (path and query) and its headers. */
  readonly seen: Array<{ url: string; headers: http.IncomingHttpHeaders }> = [];
  private readonly tokens = new Set<string>();
  private cutsLeft: number;

  private constructor(
    private readonly server: http.Server,
    readonly host: string,
    private readonly target: string,
    private readonly opts: ProxyOptions,
  ) {
    this.cutsLeft = opts.cutBlobs ?? 0;
  }

  static async start(target: string, opts: ProxyOptions = {}): Promise<TestProxy> {
    const holder: { proxy?: TestProxy } = {};
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => holder.proxy?.handle(req, res);
    const server = opts.tls
      ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert, ca: opts.tls.clientCa, requestCert: !!opts.tls.clientCa, rejectUnauthorized: !!opts.tls.clientCa }, handler)
      : http.createServer(handler);
    const address = opts.listenAddress ?? '127.0.0.1';
    await new Promise<void>((r) => server.listen(0, address, r));
    holder.proxy = new TestProxy(server, `${address}:${(server.address() as AddressInfo).port}`, target, opts);
    return holder.proxy;
  }

  /** Issues a token directly (as a registry_token a client might be given). */
  issueToken(): string {
    const token = randomBytes(12).toString('hex');
    this.tokens.add(token);
    return token;
  }

  blobGets(digest: string): number {
    return this.counts.blobGets.get(digest) ?? 0;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (!req.headers['x-delayed'] && !req.headers['x-held']) this.seen.push({ url: req.url ?? '/', headers: req.headers });
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const { bearer } = this.opts;
    if (url.pathname === '/token' && req.method === 'POST') {
      // OAuth2 refresh-token grant (Docker identity tokens).
      this.counts.tokenRequests++;
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        if (form.get('grant_type') !== 'refresh_token' || !bearer?.refreshToken || form.get('refresh_token') !== bearer.refreshToken) {
          res.writeHead(401).end('{"error":"invalid_grant"}');
          return;
        }
        const token = randomBytes(12).toString('hex');
        this.tokens.add(token);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: 300 }));
      });
      return;
    }
    if (url.pathname === '/token') {
      this.counts.tokenRequests++;
      if (bearer?.username) {
        const want = 'Basic ' + Buffer.from(`${bearer.username}:${bearer.password ?? ''}`).toString('base64');
        if (req.headers.authorization !== want) {
          res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
          return;
        }
      }
      if (url.searchParams.get('service') !== 'berth-test' || !url.searchParams.getAll('scope').some((s) => /^repository:.+:pull/.test(s))) {
        res.writeHead(400).end('bad token request');
        return;
      }
      const token = randomBytes(12).toString('hex');
      this.tokens.add(token);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, expires_in: bearer?.expiresIn ?? 300 }));
      return;
    }
    const isBlob = /\/blobs\/sha256:/.test(url.pathname) && req.method === 'GET';
    if (isBlob) this.authorizationsOnBlobs.push(req.headers.authorization);
    if (bearer && url.pathname.startsWith('/v2/') && !(isBlob && url.searchParams.has('redirected'))) {
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!m || !this.tokens.has(m[1])) {
        res
          .writeHead(401, {
            'WWW-Authenticate': `Bearer realm="http://${this.host}/token",service="berth-test",scope="repository:${url.pathname.split('/').slice(2, -2).join('/')}:pull"`,
          })
          .end();
        return;
      }
    }
    if (isBlob && this.opts.redirectBlobsTo && !url.searchParams.has('redirected')) {
      res.writeHead(307, { Location: `http://${this.opts.redirectBlobsTo}${url.pathname}?redirected=1` }).end();
      return;
    }
    if ((this.opts.serverErrors ?? 0) > this.counts.serverErrors && /\/(manifests|blobs)\//.test(url.pathname)) {
      this.counts.serverErrors++;
      res.writeHead(503).end('{"errors":[{"code":"UNAVAILABLE"}]}');
      return;
    }
    if (/\/manifests\//.test(url.pathname) && req.method === 'GET') this.counts.manifestGets++;
    if (isBlob && this.opts.blobDelayMs && !req.headers['x-delayed']) {
      req.headers['x-delayed'] = '1';
      setTimeout(() => this.handle(req, res), this.opts.blobDelayMs);
      return;
    }
    const digest = isBlob ? url.pathname.slice(url.pathname.lastIndexOf('/') + 1) : '';
    const hold = this.opts.holdBlob;
    if (hold && digest === hold.digest && !req.headers['x-held']) {
      req.headers['x-held'] = '1';
      void hold.until.then(() => this.handle(req, res));
      return;
    }
    if (isBlob) this.counts.blobGets.set(digest, this.blobGets(digest) + 1);
    const headers = { ...req.headers, host: this.target };
    delete headers.authorization;
    const up = http.request(`http://${this.target}${url.pathname}${url.search.replace(/[?&]redirected=1/, '')}`, { method: req.method, headers, agent: false }, (upRes) => {
      const size = Number(upRes.headers['content-length'] ?? 0);
      const tamper = isBlob && upRes.statusCode !== undefined && upRes.statusCode < 300 && size > 1024;
      if (tamper && this.cutsLeft > 0) {
        this.cutsLeft--;
        res.writeHead(upRes.statusCode ?? 200, upRes.headers);
        const cutAt = Math.floor(size * (this.opts.cutFraction ?? 0.5));
        let sent = 0;
        const cut = () => {
          upRes.destroy();
          // Let what was sent arrive, then drop the connection.
          setTimeout(() => res.socket?.destroy(), 50);
        };
        if (cutAt === 0) {
          res.flushHeaders();
          cut();
          return;
        }
        upRes.on('data', (c: Buffer) => {
          if (sent >= cutAt) return;
          const part = c.subarray(0, cutAt - sent);
          sent += part.length;
          res.write(part);
          if (sent >= cutAt) cut();
        });
        return;
      }
      if (tamper && this.opts.stallBlobs) {
        res.writeHead(upRes.statusCode ?? 200, upRes.headers);
        let sent = 0;
        upRes.on('data', (c: Buffer) => {
          if (sent >= size / 2) return;
          sent += c.length;
          res.write(c);
        });
        return;
      }
      if (tamper && (this.opts.corruptBlobs || this.opts.corruptBlob === digest)) {
        res.writeHead(upRes.statusCode ?? 200, upRes.headers);
        let first = true;
        upRes.on('data', (c: Buffer) => {
          if (first && c.length > 0) {
            c = Buffer.from(c);
            c[c.length - 1] ^= 0xff;
            first = false;
          }
          res.write(c);
        });
        upRes.on('end', () => res.end());
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface TestCert {
  key: Buffer;
  cert: Buffer;
  keyPath: string;
  certPath: string;
}

/** A self-signed certificate for 127.0.0.1 (and `ips`) (openssl), written to `dir`. */
export function selfSignedCert(dir: string, name: string, ips: string[] = []): TestCert {
  const keyPath = path.join(dir, `${name}.key`);
  const certPath = path.join(dir, `${name}.crt`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${['127.0.0.1', ...ips].map((ip) => `IP:${ip}`).join(',')}`,
  ], { stdio: 'ignore' });
  return { key: fs.readFileSync(keyPath), cert: fs.readFileSync(certPath), keyPath, certPath };
}

/** A registry that serves fixed manifests (for formats docker-registry will not store, like schema 1). */
export async function startFakeRegistry(manifests: Record<string, { mediaType: string; body: string }>): Promise<{ host: string; stop: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const m = manifests[req.url ?? ''];
    if (req.url === '/v2/') res.writeHead(200).end('{}');
    else if (m) res.writeHead(200, { 'Content-Type': m.mediaType }).end(m.body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
