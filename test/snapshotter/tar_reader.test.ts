// The streaming tar reader against archives written by GNU tar (gnu, posix/pax
// and ustar formats) and by our own writer (PAX records, GNU long names, odd chunking).
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TarReader, type TarEntry } from '../../src/snapshotter/tar_reader';
import { buildTar } from '../helpers/tar_writer';
import { streamOf } from './fixtures';

async function readAll(buf: Buffer, chunk = 333): Promise<{ entries: Array<TarEntry & { data: string }>; sha: string }> {
  const reader = new TarReader(streamOf(buf, chunk));
  const entries: Array<TarEntry & { data: string }> = [];
  for (;;) {
    const e = await reader.next();
    if (e === null) break;
    const parts: Buffer[] = [];
    for await (const c of reader.body()) parts.push(Buffer.from(c));
    entries.push({ ...e, data: Buffer.concat(parts).toString('utf8') });
  }
  const { sha256 } = await reader.finish();
  return { entries, sha: sha256 };
}

describe('snapshotter: tar reader', function () {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tar-'));
    const src = path.join(dir, 'src');
    const deep = path.join(src, 'x'.repeat(80), 'y'.repeat(80));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, `${'z'.repeat(120)}.txt`), 'deep content');
    fs.writeFileSync(path.join(src, 'small'), 'hello');
    fs.symlinkSync(`${'t'.repeat(150)}`, path.join(src, 'longlink'));
    fs.linkSync(path.join(src, 'small'), path.join(src, 'hard'));
    execFileSync('setfattr', ['-n', 'user.k', '-v', 'v1', path.join(src, 'small')]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the ustar prefix field (GNU tar --format=ustar)', async () => {
    const src = path.join(dir, 'usrc');
    const deep = path.join(src, 'p'.repeat(90), 'q'.repeat(50));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'name.txt'), 'prefixed');
    const tarPath = path.join(dir, 'ustar.tar');
    execFileSync('tar', ['-C', src, '--format=ustar', '-cf', tarPath, '.']);
    const { entries } = await readAll(fs.readFileSync(tarPath));
    const e = entries.find((x) => x.name.endsWith('name.txt'));
    assert.equal(e?.name, `./${'p'.repeat(90)}/${'q'.repeat(50)}/name.txt`);
    assert.equal(e?.data, 'prefixed');
  });

  for (const format of ['gnu', 'posix'] as const) {
    it(`reads a GNU tar --format=${format} archive, hashing every byte`, async () => {
      const tarPath = path.join(dir, `${format}.tar`);
      const args = ['-C', path.join(dir, 'src'), `--format=${format}`, '-cf', tarPath, '.'];
      if (format === 'posix') args.unshift('--xattrs');
      execFileSync('tar', args, { stdio: 'pipe' });
      const buf = fs.readFileSync(tarPath);
      const { entries, sha } = await readAll(buf);
      assert.equal(sha, createHash('sha256').update(buf).digest('hex'));
      const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, '').replace(/\/$/, ''), e]));
      const deepName = `${'x'.repeat(80)}/${'y'.repeat(80)}/${'z'.repeat(120)}.txt`;
      assert.equal(byName.get(deepName)?.data, 'deep content');
      assert.equal(byName.get('longlink')?.type, 'symlink');
      assert.equal(byName.get('longlink')?.linkName, 't'.repeat(150));
      const small = byName.get('small');
      const hard = byName.get('hard');
      assert.ok(small && hard);
      // one of the two is the file, the other a hard link to it
      const [file, link] = small.type === 'file' ? [small, hard] : [hard, small];
      assert.equal(file.data, 'hello');
      assert.equal(link.type, 'hardlink');
      if (format === 'posix') assert.equal(file.xattrs.get('user.k')?.toString(), 'v1');
    });
  }

  it('applies PAX path/linkpath/uid/gid/mtime/size and binary xattrs, GNU L/K names, ustar fields', async () => {
    const cap = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const buf = buildTar([
      {
        name: 'p',
        body: 'pax',
        pax: { uid: '3000000', gid: '4000000', mtime: '1700000000.25', 'SCHILY.xattr.security.capability': cap },
      },
      { name: `${'n'.repeat(200)}`, type: 'symlink', linkName: `${'l'.repeat(300)}`, gnuLong: true },
      { name: 'dev', type: 'block', devMajor: 7, devMinor: 9, mode: 0o660, uid: 5, gid: 6 },
      { name: 'd/', type: 'dir', mode: 0o1777 },
      { name: 'after', body: 'x'.repeat(1025) },
    ]);
    const { entries } = await readAll(buf, 1);
    assert.equal(entries.length, 5);
    const [p, l, dev, d, after] = entries;
    assert.ok(p && l && dev && d && after);
    assert.equal(p.uid, 3000000);
    assert.equal(p.gid, 4000000);
    assert.equal(p.mtime, 1700000000.25);
    assert.deepEqual(p.xattrs.get('security.capability'), cap);
    assert.equal(p.data, 'pax');
    assert.equal(l.name, 'n'.repeat(200));
    assert.equal(l.linkName, 'l'.repeat(300));
    assert.deepEqual([dev.type, dev.devMajor, dev.devMinor, dev.mode, dev.uid, dev.gid], ['block', 7, 9, 0o660, 5, 6]);
    assert.deepEqual([d.type, d.mode], ['dir', 0o1777]);
    assert.equal(after.data.length, 1025);
  });

  it('skips unread bodies and hashes data after the end-of-archive blocks', async () => {
    const buf = Buffer.concat([buildTar([{ name: 'a', body: 'A'.repeat(3000) }, { name: 'b', body: 'B' }]), Buffer.alloc(9000)]);
    const reader = new TarReader(streamOf(buf, 4096));
    assert.equal((await reader.next())?.name, 'a');
    assert.equal((await reader.next())?.name, 'b');
    assert.equal(await reader.next(), null);
    const { sha256, bytes } = await reader.finish();
    assert.equal(bytes, buf.length);
    assert.equal(sha256, createHash('sha256').update(buf).digest('hex'));
  });

  it('pulls from its source only as fast as the consumer reads (backpressure, no buffering)', async () => {
    const header = buildTar([{ name: 'big', body: Buffer.alloc(0) }]).subarray(0, 512);
    // Rewrite the header's size to 64 MiB; the body is generated lazily, 64 KiB at a time.
    const size = 64 * 1024 * 1024;
    const h = Buffer.from(header);
    h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[i] as number;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    let produced = 0;
    async function* source(): AsyncGenerator<Buffer> {
      yield h;
      for (let off = 0; off < size; off += 65536) {
        produced++;
        yield Buffer.alloc(65536);
      }
      yield Buffer.alloc(1024);
    }
    const reader = new TarReader(source());
    const e = await reader.next();
    assert.equal(e?.size, size);
    let consumed = 0;
    for await (const _c of reader.body()) {
      consumed++;
      assert.ok(produced <= consumed + 1, `source ran ahead: produced ${produced}, consumed ${consumed}`);
    }
    assert.equal(consumed, size / 65536);
    assert.equal(await reader.next(), null);
  });

  it('refuses bad checksums, sparse files and oversized PAX headers', async () => {
    const good = buildTar([{ name: 'a', body: 'x' }]);
    const bad = Buffer.from(good);
    bad[0] = 0x62; // name changed, checksum not
    await assert.rejects(readAll(bad), /checksum/);
    const sparse = Buffer.from(good);
    sparse[156] = 0x53; // 'S'
    sparse.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += sparse[i] as number;
    sparse.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    await assert.rejects(readAll(sparse), /unsupported type/);
    await assert.rejects(readAll(buildTar([{ name: 'a', pax: { comment: 'c'.repeat(2 * 1024 * 1024) } }])), /limit/);
  });
});
