// Every document berthd reads whole is bounded while it streams, with an error
// naming the limit: manifests, image configs, token replies, hosts.toml, the
// JSON documents of an import archive. Hostile servers here send no
// Content-Length, so only the streaming cap can stop them.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BerthError } from '../../src/errors';
import { importArchive } from '../../src/image/archive/import';
import { Limits } from '../../src/limits';
import { silentLogger } from '../../src/log/logger';
import { busyboxLayer, Pusher, TestRegistry } from '../helpers/registry';
import { buildTar } from '../helpers/tar_writer';
import { imageFixture, writeHostsToml, type ImageFixture } from '../image/fixture';

const isLimit = (re: RegExp) => (err: unknown) => {
  assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
  assert.equal(err.kind, 'INVALID_ARGUMENT', err.message);
  assert.match(err.message, re);
  return true;
};

/** An HTTP server whose handler writes `body` in 64 KiB chunks without a Content-Length; counts bytes sent. */
interface Reply {
  status: number;
  headers?: Record<string, string>;
  body: Buffer;
}

async function hostileServer(route: (url: string, host: string) => Reply) {
  let sent = 0;
  const server = http.createServer((req, res) => {
    const r = route(req.url ?? '', `127.0.0.1:${(server.address() as AddressInfo).port}`);
    res.writeHead(r.status, r.headers ?? {});
    let off = 0;
    const pump = (): void => {
      while (off < r.body.length) {
        const chunk = r.body.subarray(off, off + 64 * 1024);
        off += chunk.length;
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => sent,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('limits: documents read whole are bounded while they stream', function () {
  this.timeout(60_000);
  let fx: ImageFixture;
  beforeEach(async () => {
    fx = await imageFixture();
  });
  afterEach(async () => {
    await fx?.cleanup();
  });

  it('refuses a manifest over the limit without reading it all', async () => {
    const huge = Buffer.alloc(64 * 1024 * 1024, 0x20);
    const srv = await hostileServer((url) =>
      url === '/v2/' ? { status: 200, body: Buffer.from('{}') } : { status: 200, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: huge },
    );
    try {
      await assert.rejects(fx.images.pull(`${srv.host}/big/manifest:v1`), isLimit(/manifest .* is over the 4194304-byte limit/));
      // The connection is dropped at the cap: far less than the 64 MiB offered went out (socket buffers aside).
      assert.ok(srv.sent() < 16 * 1024 * 1024, `server sent ${srv.sent()} bytes`);
    } finally {
      await srv.stop();
    }
  });

  it('refuses a token reply over the limit', async () => {
    const srv = await hostileServer((url, host): Reply => {
      if (url.startsWith('/token')) return { status: 200, headers: { 'Content-Type': 'application/json' }, body: Buffer.alloc(8 * 1024 * 1024, 0x20) };
      return { status: 401, headers: { 'WWW-Authenticate': `Bearer realm="http://${host}/token",service="t"` }, body: Buffer.from('{}') };
    });
    try {
      await assert.rejects(fx.images.pull(`${srv.host}/any/image:v1`), isLimit(/token reply of 127\.0\.0\.1:\d+ is over the 1048576-byte limit/));
    } finally {
      await srv.stop();
    }
  });

  it('refuses an image config over the limit before downloading it', async () => {
    const registry = await TestRegistry.start();
    try {
      const pusher = new Pusher(registry.host);
      const pushed = await pusher.pushImage('big/config', 'v1', {
        layers: [busyboxLayer()],
        config: { Env: ['PATH=/bin'], Labels: { pad: 'p'.repeat(Limits.imageConfigBytes + 1) } },
      });
      assert.ok(pushed.config.length > Limits.imageConfigBytes);
      await assert.rejects(fx.images.pull(`${registry.host}/big/config:v1`), isLimit(/image config sha256:[0-9a-f]+ is \d+ bytes, over the 4194304-byte limit/));
      const blob = path.join(fx.config.root, 'content', 'blobs', 'sha256', pushed.configDigest.slice('sha256:'.length));
      assert.equal(fs.existsSync(blob), false, 'the oversized config was stored');
    } finally {
      await registry.stop();
    }
  });

  it('refuses a hosts.toml over the limit', async () => {
    writeHostsToml(fx.config, 'example.invalid', `# ${'x'.repeat(Limits.hostsTomlBytes)}\n`);
    await assert.rejects(fx.images.pull('example.invalid/a/b:v1'), isLimit(/hosts file .* is \d+ bytes, over the 262144-byte limit/));
  });

  it('refuses an import archive whose JSON documents exceed the limit together', async () => {
    const doc = Buffer.alloc(4 * 1024 * 1024 - 1024, 0x20);
    const entries = Array.from({ length: 9 }, (_, i) => ({ name: `doc${i}.json`, body: doc }));
    const tar = buildTar([...entries, { name: 'index.json', body: '{}' }]);
    await assert.rejects(
      importArchive(fx.images, Readable.from([tar]), silentLogger()),
      isLimit(/JSON documents exceed the 33554432-byte limit together/),
    );
  });
});
