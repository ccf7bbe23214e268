// Property-based fuzzing (fast-check) of every parser that reads hostile
// input: the tar reader, the SPDY and WebSocket frame parsers, image
// references, hosts.toml and the config loader. Each property: on any input
// the parser answers (a result or a BerthError / protocol error), never
// throws anything else, never hangs, and what it accepts is consistent.
// Runs are bounded so the whole file takes a few seconds; a failure prints
// the seed and the shrunk input to replay it.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex, PassThrough, Readable } from 'node:stream';
import fc from 'fast-check';
import { stringify as toToml } from 'smol-toml';
import { parseConfig } from '../../src/config/config';
import { BerthError } from '../../src/errors';
import { formatReference, parseReference } from '../../src/oci/reference';
import { loadEndpoints } from '../../src/registry/hosts';
import { TarReader } from '../../src/snapshotter/tar_reader';
import { decodeHeaderBlock, encodeHeaderBlock, HeaderCompressor, SpdySession } from '../../src/streaming/spdy';
import { CHANNEL_CLOSE, codecFor, decodeChannelMessage, encodeChannelMessage } from '../../src/streaming/ws_channels';
import { buildTar, extendedHeader, paxRecords, type TarSpec } from '../helpers/tar_writer';

/** Fails a run that takes longer than `ms` (a hang is a finding too). */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Only a BerthError of the given kind is an acceptable failure. */
function expectKind(err: unknown, kind: string): void {
  if (!(err instanceof BerthError) || err.kind !== kind) throw err;
}

const chunked = (buf: Buffer, size: number): Readable =>
  Readable.from((function* () {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  })());

async function readTar(buf: Buffer, chunk: number): Promise<number> {
  const reader = new TarReader(chunked(buf, chunk), { entries: 10_000 });
  let n = 0;
  for (;;) {
    const e = await reader.next();
    if (e === null) break;
    assert.equal(typeof e.name, 'string');
    assert.ok(e.size >= 0 && Number.isSafeInteger(e.size));
    n++;
    for await (const _c of reader.body()) {
      // bodies are read through
    }
  }
  await reader.finish();
  return n;
}

const tarSpec: fc.Arbitrary<TarSpec> = fc.record({
  name: fc.string({ minLength: 1, maxLength: 150 }),
  type: fc.constantFrom('file', 'dir', 'symlink', 'hardlink', 'fifo'),
  body: fc.string({ maxLength: 700 }),
  linkName: fc.string({ maxLength: 120 }),
  uid: fc.integer({ min: 0, max: 65535 }),
  pax: fc.option(fc.dictionary(fc.constantFrom('path', 'uid', 'mtime', 'comment', 'SCHILY.xattr.user.a', 'GNU.sparse.x', 'size'), fc.string({ maxLength: 40 })), {
    nil: undefined,
  }),
  gnuLong: fc.boolean(),
}) as fc.Arbitrary<TarSpec>;

/** A stream pair: what the test writes reaches `server` as if from the network. */
function link(): { server: Duplex; toServer: PassThrough; fromServer: PassThrough } {
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  fromServer.resume(); // a reading peer
  return { server: Duplex.from({ readable: toServer, writable: fromServer }), toServer, fromServer };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('fuzz: parsers of hostile input (fast-check)', function () {
  this.timeout(120_000);

  it('tar reader: any bytes end in entries or INVALID_ARGUMENT, never a crash or a hang', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.integer({ min: 1, max: 1024 }), async (bytes, chunk) => {
        try {
          await within(5000, readTar(Buffer.from(bytes), chunk));
        } catch (err) {
          expectKind(err, 'INVALID_ARGUMENT');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('tar reader: well-formed archives with random flips and truncation', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(tarSpec, { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.boolean(),
        async (specs, flips, cut, global) => {
          let tar = buildTar(specs);
          if (global) tar = Buffer.concat([extendedHeader('g', paxRecords([['uid', '7'], ['comment', 'x']])), tar]);
          for (const [at, v] of flips) tar[at % tar.length] = v;
          if (cut !== undefined) tar = tar.subarray(0, cut % (tar.length + 1));
          try {
            await within(5000, readTar(tar, 333));
          } catch (err) {
            expectKind(err, 'INVALID_ARGUMENT');
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('SPDY header blocks: decode gives a map or a plain "truncated" error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          const m = decodeHeaderBlock(Buffer.from(bytes));
          assert.ok(m instanceof Map);
        } catch (err) {
          assert.ok(err instanceof Error && /header block/.test(err.message), String(err));
        }
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ minLength: 1 }), fc.string())), (pairs) => {
        const m = decodeHeaderBlock(encodeHeaderBlock(pairs));
        for (const [k, v] of pairs) assert.ok((m.get(k.toLowerCase()) ?? '').split('\0').includes(v));
      }),
      { numRuns: 300 },
    );
  });

  it('SPDY sessions: random frames and bytes never crash the server side', async () => {
    const frame = fc.oneof(
      // A control frame of any type, with a valid or random header block.
      fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }), fc.boolean()).map(([type, flags, body, headers]) => {
        const payload = headers ? Buffer.concat([Buffer.alloc(10), new HeaderCompressor().compress(encodeHeaderBlock([['streamtype', 'stdout']]))]) : Buffer.from(body);
        const head = Buffer.alloc(8);
        head.writeUInt16BE(0x8003, 0);
        head.writeUInt16BE(type, 2);
        head.writeUInt32BE((((flags & 0xff) << 24) | payload.length) >>> 0, 4);
        return Buffer.concat([head, payload]);
      }),
      // A data frame for some stream.
      fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ maxLength: 64 })).map(([id, flags, body]) => {
        const head = Buffer.alloc(8);
        head.writeUInt32BE(id, 0);
        head.writeUInt32BE(((flags << 24) | body.length) >>> 0, 4);
        return Buffer.concat([head, Buffer.from(body)]);
      }),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { maxLength: 20 }), async (frames) => {
        const { server, toServer } = link();
        const session = new SpdySession(server, 'server', { writeStallMs: 1000 });
        session.on('protocolError', () => undefined);
        session.on('stream', (s: { reply: () => void; resume: () => void }) => {
          s.reply();
          s.resume();
        });
        for (const f of frames) toServer.write(f);
        await settle();
        session.destroy();
        assert.equal(session.closed, true);
      }),
      { numRuns: 200 },
    );
  });

  it('SPDY sessions: after any well-framed frames, a PING is answered or the session is closed (never wedged)', async () => {
    type Step =
      | { k: 'syn' | 'headers'; id: number; fin: boolean; pad: number }
      | { k: 'data'; id: number; fin: boolean; len: number }
      | { k: 'ctl'; type: number; body: Uint8Array };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ k: fc.constantFrom('syn' as const, 'headers' as const), id: fc.integer({ min: 0, max: 20 }), fin: fc.boolean(), pad: fc.oneof(fc.nat(200), fc.integer({ min: 16_000, max: 100_000 })) }),
      fc.record({ k: fc.constant('data' as const), id: fc.integer({ min: 0, max: 20 }), fin: fc.boolean(), len: fc.nat(300) }),
      fc.record({ k: fc.constant('ctl' as const), type: fc.constantFrom(3, 4, 6, 7, 9, 10, 11), body: fc.uint8Array({ maxLength: 16 }) }),
    );
    const control = (type: number, flags: number, payload: Buffer): Buffer => {
      const head = Buffer.alloc(8);
      head.writeUInt16BE(0x8003, 0);
      head.writeUInt16BE(type, 2);
      head.writeUInt32BE((((flags & 0xff) << 24) | payload.length) >>> 0, 4);
      return Buffer.concat([head, payload]);
    };
    const pingId = Buffer.from([0x7f, 0xf0, 0x12, 0x35]);
    const echo = control(6, 0, pingId);
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 12 }), async (steps) => {
        const { server, toServer, fromServer } = link();
        let out = Buffer.alloc(0);
        fromServer.on('data', (d: Buffer) => (out = Buffer.concat([out, d])));
        const session = new SpdySession(server, 'server', { writeStallMs: 5000 });
        session.on('protocolError', () => undefined);
        session.on('stream', (st: { reply: () => void; resume: () => void }) => {
          st.reply();
          st.resume();
        });
        // One compression context per peer, as on the wire.
        const z = new HeaderCompressor();
        for (const st of steps) {
          if (st.k === 'ctl') {
            toServer.write(control(st.type, 0, Buffer.from(st.body)));
          } else if (st.k === 'data') {
            const head = Buffer.alloc(8);
            head.writeUInt32BE(st.id * 2 + 1, 0);
            head.writeUInt32BE((((st.fin ? 1 : 0) << 24) | st.len) >>> 0, 4);
            toServer.write(Buffer.concat([head, Buffer.alloc(st.len, 7)]));
          } else {
            const block = z.compress(encodeHeaderBlock([['streamtype', 'stdout'], ['x-pad', 'p'.repeat(st.pad)]]));
            const id = Buffer.alloc(st.k === 'syn' ? 10 : 4);
            id.writeUInt32BE(st.id * 2 + 1, 0);
            toServer.write(control(st.k === 'syn' ? 1 : 8, st.fin ? 1 : 0, Buffer.concat([id, block])));
          }
        }
        toServer.write(control(6, 0, pingId));
        const deadline = Date.now() + 3000;
        while (!session.closed && !out.includes(echo) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        const alive = out.includes(echo) || session.closed;
        session.destroy();
        assert.ok(alive, 'the session neither answered a PING nor ended');
      }),
      { numRuns: 100 },
    );
  });

  // WebSocket framing itself is the `ws` package's; what berth parses on top is the k8s channel layer.
  const channelProtocols = ['', 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'base64.channel.k8s.io', 'v5.channel.k8s.io'];

  it('k8s channel messages: any bytes decode to a channel, a close signal or nothing, or fail only as a bad close signal', () => {
    fc.assert(
      fc.property(fc.constantFrom(...channelProtocols), fc.uint8Array({ maxLength: 300 }), (protocol, bytes) => {
        const codec = codecFor(protocol);
        const msg = Buffer.from(bytes);
        let decoded: ReturnType<typeof decodeChannelMessage>;
        try {
          decoded = decodeChannelMessage(codec, msg);
        } catch {
          assert.ok(codec.supportsClose && msg[0] === CHANNEL_CLOSE && msg.length !== 2, 'only a malformed close signal throws');
          return;
        }
        if (msg.length === 0) return assert.equal(decoded, undefined);
        assert.ok(decoded);
        if ('closeChannel' in decoded) return assert.ok(codec.supportsClose && msg.length === 2);
        assert.ok(decoded.data.length <= msg.length);
        assert.equal(decoded.channel, codec.base64 ? msg[0] - 48 : msg[0]);
      }),
      { numRuns: 2000 },
    );
  });

  it('k8s channel messages: what is encoded decodes to the same channel and bytes', () => {
    fc.assert(
      fc.property(fc.constantFrom(...channelProtocols), fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 300 }), (protocol, channel, bytes) => {
        const codec = codecFor(protocol);
        const m = encodeChannelMessage(codec, channel, Buffer.from(bytes));
        assert.equal(m.binary, !codec.base64);
        const d = decodeChannelMessage(codec, m.data);
        assert.ok(d && 'channel' in d);
        assert.equal(d.channel, channel);
        assert.deepEqual(d.data, Buffer.from(bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it('image references: parse or INVALID_ARGUMENT; a parsed reference formats to itself', () => {
    const part = fc.stringMatching(/^[a-z0-9]+([._-][a-z0-9]+)*$/, { maxLength: 20 });
    const plausible = fc
      .tuple(
        fc.option(fc.oneof(fc.constant('localhost:5000'), fc.constant('registry.example.com'), fc.constant('127.0.0.1:80')), { nil: undefined }),
        fc.array(part, { minLength: 1, maxLength: 3 }),
        fc.option(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/), { nil: undefined }),
        fc.option(fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`), { nil: undefined }),
      )
      .map(([host, path, tag, digest]) => `${host ? `${host}/` : ''}${path.join('/')}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 40 }), plausible), (input) => {
        let ref;
        try {
          ref = parseReference(input);
        } catch (err) {
          expectKind(err, 'INVALID_ARGUMENT');
          return;
        }
        const again = parseReference(formatReference(ref));
        assert.deepEqual(again, ref);
      }),
      { numRuns: 2000 },
    );
  });

  it('hosts.toml: any file gives endpoints or INVALID_ARGUMENT', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fuzz-hosts-'));
    try {
      const value = fc.oneof(fc.string({ maxLength: 30 }), fc.boolean(), fc.integer(), fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }));
      const hostTable = fc.dictionary(fc.constantFrom('capabilities', 'skip_verify', 'ca', 'client', 'header', 'override_path', 'x'), value);
      const doc = fc
        .record({
          server: fc.option(fc.oneof(fc.constant('https://r.example.com'), fc.constant('http://127.0.0.1:5000'), fc.string({ maxLength: 20 })), { nil: undefined }),
          host: fc.option(fc.dictionary(fc.oneof(fc.constant('https://m.example.com'), fc.string({ maxLength: 15 })), hostTable, { maxKeys: 3 }), { nil: undefined }),
        })
        .map((d) => toToml(Object.fromEntries(Object.entries(d).filter(([, v]) => v !== undefined))));
      fc.assert(
        fc.property(fc.oneof(doc, fc.string({ maxLength: 200 })), (text) => {
          const hostDir = path.join(dir, 'fuzz.example.com');
          fs.mkdirSync(hostDir, { recursive: true });
          fs.writeFileSync(path.join(hostDir, 'hosts.toml'), text);
          try {
            const eps = loadEndpoints(dir, 'fuzz.example.com');
            assert.ok(eps.length >= 1);
            for (const e of eps) {
              assert.ok(e.protocol === 'http:' || e.protocol === 'https:', e.protocol);
              assert.ok(e.host.length > 0);
            }
          } catch (err) {
            expectKind(err, 'INVALID_ARGUMENT');
          }
        }),
        { numRuns: 500 },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('config loader: any TOML gives a config or INVALID_ARGUMENT naming the problem', () => {
    const key = fc.constantFrom('socket', 'root', 'log', 'level', 'format', 'metrics', 'enabled', 'address', 'runtime', 'handlers', 'runc', 'path', 'image', 'pinned_images', 'credentials', 'streaming', 'port', 'x');
    const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.boolean(), fc.integer(), fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }));
    const tree = fc.letrec<{ node: Record<string, unknown> }>((tie) => ({
      node: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, leaf, tie('node')), { maxKeys: 4 }),
    })).node;
    fc.assert(
      fc.property(fc.oneof(tree.map((t) => toToml(t)), fc.string({ maxLength: 200 })), (text) => {
        try {
          const c = parseConfig(text);
          assert.equal(typeof c.socket, 'string');
        } catch (err) {
          expectKind(err, 'INVALID_ARGUMENT');
        }
      }),
      { numRuns: 1000 },
    );
  });
});
