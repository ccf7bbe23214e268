import { strict as assert } from 'node:assert';
import * as zlib from 'node:zlib';
import { Duplex, PassThrough } from 'node:stream';
import {
  decodeHeaderBlock,
  encodeHeaderBlock,
  HeaderCompressor,
  SpdySession,
  type SpdyStream,
} from '../../src/streaming/spdy';
import { SPDY3_DICTIONARY } from '../../src/streaming/spdy_dictionary';
import { HeaderDecompressor, SYNC_INFLATE_INPUT_BYTES } from '../../src/streaming/header_inflater';
import { JsonObjectSplitter } from '../../src/streaming/remotecommand';
import { codecFor, decodeChannelMessage, encodeChannelMessage } from '../../src/streaming/ws_channels';

describe('streaming: protocol units', () => {
  it('SPDY/3 dictionary is the 1423-byte spec constant', () => {
    assert.equal(SPDY3_DICTIONARY.length, 1423);
    assert.equal(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1'), '\0\0\0\x07options');
    assert.equal(SPDY3_DICTIONARY.subarray(-7).toString('latin1'), ',enq=0.');
  });

  it('header blocks: our stored-block zlib stream inflates with a standard inflater', () => {
    const c = new HeaderCompressor();
    const a = c.compress(encodeHeaderBlock([['streamType', 'error']]));
    const b = c.compress(encodeHeaderBlock([['streamType', 'stdout'], ['port', '80']]));
    const inflate = zlib.inflateSync(Buffer.concat([a, b]), { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const first = decodeHeaderBlock(inflate);
    assert.equal(first.get('streamtype'), 'error');
  });

  /** A Go-like peer's header compression: one deflate stream, Z_SYNC_FLUSH after each block. */
  function goDeflater(): { frame: (h: Array<[string, string]>) => Promise<Buffer>; close: () => void } {
    const deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
    return {
      frame: async (h) => {
        deflate.write(encodeHeaderBlock(h));
        await new Promise<void>((r) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
        const parts: Buffer[] = [];
        let x: Buffer | null;
        while ((x = deflate.read() as Buffer | null) !== null) parts.push(x);
        return Buffer.concat(parts);
      },
      close: () => deflate.close(),
    };
  }

  it('header blocks: inflates real compressed blocks (what Go peers send) across frames', async () => {
    const peer = goDeflater();
    const d = new HeaderDecompressor();
    for (let i = 0; i < 5; i++) {
      const h = decodeHeaderBlock(await d.decompress(await peer.frame([['streamType', 'data'], ['port', String(8000 + i)], ['requestID', String(i)]])));
      assert.equal(h.get('port'), String(8000 + i));
      assert.equal(h.get('requestid'), String(i));
    }
    peer.close();
    d.close();
  });

  it('header blocks: inflated synchronously while small, then by one persistent inflater, every block right', async () => {
    const peer = goDeflater();
    const d = new HeaderDecompressor();
    let compressed = 0;
    let i = 0;
    // Well past the synchronous budget, so blocks on both sides of the switch are checked.
    while (compressed < 3 * SYNC_INFLATE_INPUT_BYTES) {
      const block = await peer.frame([['streamType', i % 2 ? 'data' : 'error'], ['port', String(i % 65536)], ['requestID', `${i}-${'x'.repeat(i % 97)}`]]);
      compressed += block.length;
      const h = decodeHeaderBlock(await d.decompress(block));
      assert.equal(h.get('port'), String(i % 65536));
      assert.equal(h.get('requestid'), `${i}-${'x'.repeat(i % 97)}`);
      i++;
    }
    assert.ok(d.syncBlocks > 10, `the first blocks are inflated synchronously (${d.syncBlocks})`);
    assert.ok(d.syncBlocks < i, 'later blocks go to the persistent inflater');
    peer.close();
    d.close();
  });

  it('header blocks: one inflating past the limit fails on either path, and so does every later block', async () => {
    for (const warmup of [0, 2000]) {
      const peer = goDeflater();
      const d = new HeaderDecompressor(4096);
      for (let i = 0; i < warmup; i++) await d.decompress(await peer.frame([['n', String(i)]]));
      // 64 KiB of one letter deflates to a few hundred bytes: small on the wire, past the limit inflated.
      const bomb = await peer.frame([['x', 'a'.repeat(64 * 1024)]]);
      assert.ok(bomb.length < 1024);
      await assert.rejects(d.decompress(bomb), /past the 4096-byte limit/);
      await assert.rejects(d.decompress(await peer.frame([['n', 'after']])), /past the 4096-byte limit/);
      peer.close();
      d.close();
    }
  });

  it('SPDY sessions: streams, data both ways, half-close, reset, ping', async () => {
    const a = new PassThrough();
    const b = new PassThrough();
    // Two crossed pipes make a full-duplex link.
    const sideA = Duplex.from({ readable: a, writable: b });
    const sideB = Duplex.from({ readable: b, writable: a });
    const client = new SpdySession(sideA, 'client');
    const server = new SpdySession(sideB, 'server');
    server.on('stream', (s: SpdyStream) => {
      s.reply();
      if (s.header('streamType') === 'echo') s.pipe(s);
      else s.reset();
    });
    const s = await client.openStream([['streamType', 'echo']]);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise((r) => s.once('end', r));
    s.end(Buffer.alloc(200000, 7));
    await ended;
    assert.equal(Buffer.concat(got).length, 200000);
    const r = await client.openStream([['streamType', 'other']]).then(
      (st) => new Promise((res) => st.once('close', () => res('closed'))),
      () => 'rejected',
    );
    assert.ok(r === 'closed' || r === 'rejected');
    await client.ping();
    client.destroy();
    server.destroy();
  });

  it('channel codecs: binary, base64 and the v5 close signal', () => {
    const b64 = codecFor('v4.base64.channel.k8s.io');
    const m = encodeChannelMessage(b64, 1, Buffer.from([0, 255]));
    assert.equal(m.data.toString(), '1AP8=');
    assert.equal(m.binary, false);
    assert.deepEqual(decodeChannelMessage(b64, Buffer.from('0aGk=')), { channel: 0, data: Buffer.from('hi') });
    const v5 = codecFor('v5.channel.k8s.io');
    assert.deepEqual(decodeChannelMessage(v5, Buffer.from([255, 0])), { closeChannel: 0 });
    assert.throws(() => decodeChannelMessage(v5, Buffer.from([255, 0, 1])));
    const v4 = codecFor('v4.channel.k8s.io');
    assert.deepEqual(decodeChannelMessage(v4, Buffer.from([255, 0])), { channel: 255, data: Buffer.from([0]) });
  });

  it('resize messages split across reads, with braces inside strings', () => {
    const s = new JsonObjectSplitter();
    assert.deepEqual(s.push('{"Width":80,'), []);
    assert.deepEqual(s.push('"Height":24}\n{"Width":1'), [{ Width: 80, Height: 24 }]);
    assert.deepEqual(s.push('00,"Height":50,"x":"}{"}{"Width":1,"Height":2}'), [
      { Width: 100, Height: 50, x: '}{' },
      { Width: 1, Height: 2 },
    ]);
  });
});
