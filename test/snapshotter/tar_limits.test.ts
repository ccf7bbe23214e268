// Hostile tar metadata: every bound of the reader (src/limits.ts) is enforced
// while the archive streams, with an error naming the limit, and parsing stays
// linear in the input (PAX global headers are not copied into every entry).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log/logger';
import { LayerUnpacker } from '../../src/snapshotter/unpacker';
import { BerthError } from '../../src/errors';
import { TarReader, type TarLimits } from '../../src/snapshotter/tar_reader';
import { extendedHeader, paxRecords, tarEntry } from '../helpers/tar_writer';
import { streamOf } from './fixtures';

/** Reads every entry and body; returns the entry count and how long the read took. */
async function readAll(buf: Buffer, limits: Partial<TarLimits> = {}, chunk = 64 * 1024): Promise<{ entries: number; ms: number }> {
  const started = Date.now();
  const reader = new TarReader(streamOf(buf, chunk), limits);
  let entries = 0;
  for (;;) {
    const e = await reader.next();
    if (e === null) break;
    entries++;
    for await (const _c of reader.body()) {
      // discarded
    }
  }
  await reader.finish();
  return { entries, ms: Date.now() - started };
}

async function expectLimit(buf: Buffer, limits: Partial<TarLimits>, message: RegExp): Promise<void> {
  await assert.rejects(readAll(buf, limits), (err: unknown) => {
    assert.ok(err instanceof BerthError, `not a BerthError: ${String(err)}`);
    assert.equal(err.kind, 'INVALID_ARGUMENT');
    assert.match(err.message, message);
    return true;
  });
}

const files = (n: number, prefix = 'f'): Buffer[] => Array.from({ length: n }, (_, i) => tarEntry({ name: `${prefix}${i}`, body: 'x' }));
const archive = (parts: Buffer[]): Buffer => Buffer.concat([...parts, Buffer.alloc(1024)]);

describe('snapshotter: tar reader limits', function () {
  this.timeout(120_000);

  it('parses a layer opening with MiBs of PAX global headers in linear time', async () => {
    // 4 global headers of ~1 MiB, ~45k distinct records each, then 3000 entries.
    // Before: the merged map (~180k keys) was copied and walked for every entry
    // (~10^9 steps, minutes); now unknown keys are dropped as they are parsed.
    const globals: Buffer[] = [];
    for (let h = 0; h < 4; h++) {
      const recs: Array<[string, string]> = [];
      for (let i = 0; i < 45_000; i++) recs.push([`comment.${h}.${i}`, 'y']);
      const data = paxRecords(recs);
      assert.ok(data.length < 1024 * 1024);
      globals.push(extendedHeader('g', data));
    }
    const { entries, ms } = await readAll(archive([...globals, ...files(3000)]));
    assert.equal(entries, 3000);
    // A generous stall bound only (the old code took minutes here).
    assert.ok(ms < 20_000, `reading took ${ms} ms`);
  });

  it('still applies global path-affecting records to later entries', async () => {
    const g = extendedHeader('g', paxRecords([['uid', '4242'], ['SCHILY.xattr.user.g', 'gv']]));
    const reader = new TarReader(streamOf(archive([g, ...files(2)]), 100));
    for (let i = 0; i < 2; i++) {
      const e = await reader.next();
      assert.equal(e?.uid, 4242);
      assert.equal(e?.xattrs.get('user.g')?.toString(), 'gv');
    }
  });

  it('bounds one PAX header', async () => {
    const big = extendedHeader('x', paxRecords([['comment', 'z'.repeat(2048)]]));
    await expectLimit(archive([big, ...files(1)]), { paxHeaderBytes: 1024 }, /PAX header of \d+ bytes exceeds the 1024-byte limit/);
  });

  it('bounds a GNU long name and a long link name', async () => {
    const name = extendedHeader('L', Buffer.from(`${'n'.repeat(3000)}\0`));
    await expectLimit(archive([name, ...files(1)]), { longNameBytes: 2048 }, /GNU long name of \d+ bytes exceeds the 2048-byte limit/);
    const link = extendedHeader('K', Buffer.from(`${'k'.repeat(3000)}\0`));
    await expectLimit(archive([link, ...files(1)]), { longNameBytes: 2048 }, /GNU long link name of \d+ bytes/);
  });

  it('bounds all extended headers of an archive together', async () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 100; i++) parts.push(tarEntry({ name: `p${i}`, body: 'x', pax: { comment: 'c'.repeat(1000) } }));
    await expectLimit(archive(parts), { metadataBytes: 50 * 1024 }, /extended headers exceed the 51200-byte limit per archive/);
    // A run of global headers counts too, even though it announces no entry.
    const globals = Array.from({ length: 100 }, () => extendedHeader('g', paxRecords([['comment', 'c'.repeat(1000)]])));
    await expectLimit(archive([...globals, ...files(1)]), { metadataBytes: 50 * 1024 }, /per archive/);
  });

  it('bounds what PAX global headers accumulate', async () => {
    const g = (i: number) => extendedHeader('g', paxRecords([[`SCHILY.xattr.user.k${i}`, 'v'.repeat(1000)]]));
    await expectLimit(archive([...Array.from({ length: 20 }, (_, i) => g(i)), ...files(1)]), { globalPaxBytes: 8 * 1024 }, /global headers hold \d+ bytes, over the 8192-byte limit/);
  });

  it('bounds the xattrs of one entry, from its own header and the global ones', async () => {
    const many: Array<[string, string]> = Array.from({ length: 129 }, (_, i) => [`SCHILY.xattr.user.x${i}`, 'v']);
    await expectLimit(archive([extendedHeader('x', paxRecords(many)), ...files(1)]), {}, /more than 128 xattrs/);
    const half = (from: number): Array<[string, string]> => Array.from({ length: 80 }, (_, i) => [`SCHILY.xattr.user.x${from + i}`, 'v']);
    await expectLimit(
      archive([extendedHeader('g', paxRecords(half(0))), extendedHeader('x', paxRecords(half(100))), ...files(1)]),
      {},
      /carries more than 128 xattrs/,
    );
  });

  it('bounds the number of entries', async () => {
    assert.equal((await readAll(archive(files(100)), { entries: 100 })).entries, 100);
    await expectLimit(archive(files(101)), { entries: 100 }, /more than 100 entries/);
  });

  it('reads a header delivered in tiny chunks without re-joining them per chunk', async () => {
    // 1 MiB of PAX arriving 64 bytes at a time: 16k chunks. Joining the pending
    // bytes per chunk copied ~8 GiB; gathering them and joining once copies 1 MiB.
    const data = paxRecords([['comment', 'c'.repeat(1024 * 1024 - 64)]]);
    const { entries, ms } = await readAll(archive([extendedHeader('x', data), ...files(1)]), {}, 64);
    assert.equal(entries, 1);
    assert.ok(ms < 20_000, `reading took ${ms} ms`);
  });

  it('bounds the xattrs a layer writes (each is a setfattr process)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-xattr-cap-'));
    try {
      const parts = Array.from({ length: 4 }, (_, i) => tarEntry({ name: `x${i}`, body: 'x', pax: { 'SCHILY.xattr.user.k': 'v' } }));
      const unpacker = new LayerUnpacker(path.join(dir, 'ok'), silentLogger(), { xattrsWritten: 4 });
      fs.mkdirSync(path.join(dir, 'ok'));
      assert.equal((await unpacker.unpack(streamOf(archive(parts)))).entries, 4);
      fs.mkdirSync(path.join(dir, 'over'));
      await assert.rejects(
        new LayerUnpacker(path.join(dir, 'over'), silentLogger(), { xattrsWritten: 3 }).unpack(streamOf(archive(parts))),
        /sets more than 3 extended attributes/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
