// The image archive tar writer: PAX records for long names and for entries
// of 8 GiB and more, read back by berth's own reader and by GNU tar.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { headerBlocks, MAX_USTAR_SIZE, tarStream } from '../../src/image/archive/tar_writer';
import { TarReader } from '../../src/snapshotter/tar_reader';

/** The header blocks tarStream writes for a stream entry of `size` bytes (its body is never opened). */
async function headersFor(name: string, size: number): Promise<Buffer> {
  const gen = tarStream([{ kind: 'stream', name, size, open: () => Readable.from([]) }], 1_700_000_000);
  const out: Buffer[] = [];
  for (let i = 0; i < headerBlocks(name, size, '0', 0o644, 0).length; i++) out.push((await gen.next()).value as Buffer);
  await gen.return(undefined);
  return Buffer.concat(out);
}

describe('image archive tar writer', () => {
  it('writes a PAX size record for an entry of 8 GiB and more, and a plain ustar header below', async () => {
    assert.equal(MAX_USTAR_SIZE, 8 * 1024 ** 3 - 1);
    assert.equal(headerBlocks('blobs/sha256/x', MAX_USTAR_SIZE, '0', 0o644, 0).length, 1, 'the largest ustar size needs no PAX');
    const big = 8 * 1024 ** 3 + 12345;
    const name = `blobs/sha256/${'b'.repeat(64)}`;
    const headers = await headersFor(name, big);
    assert.match(headers.toString('latin1'), new RegExp(`\\d+ size=${big}\\n`));

    // berth's own reader (the one imports use) takes the PAX size.
    const reader = new TarReader(Readable.from([headers, Buffer.alloc(1024)]));
    const entry = await reader.next();
    assert.equal(entry?.name, name);
    assert.equal(entry?.size, big);

    // So does GNU tar (it then runs out of data, which is expected here).
    const listed = spawnSync('tar', ['-tvf', '-'], { input: Buffer.concat([headers, Buffer.alloc(1024)]), encoding: 'utf8' });
    assert.match(listed.stdout, new RegExp(`\\s${big}\\s.*${name}`));
  });

  it('combines long-name and size records in one PAX header', async () => {
    const name = `blobs/sha256/${'c'.repeat(120)}`;
    const blocks = headerBlocks(name, 9 * 1024 ** 3, '0', 0o644, 0);
    assert.equal(blocks.length, 4, 'PAX header, records, padding, entry');
    const entry = await new TarReader(Readable.from([Buffer.concat(blocks), Buffer.alloc(1024)])).next();
    assert.equal(entry?.name, name);
    assert.equal(entry?.size, 9 * 1024 ** 3);
  });
});
