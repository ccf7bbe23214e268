// The snapshotter with real overlayfs mounts: a multi-layer busybox image with
// whiteouts and opaque dirs, metadata preservation, 128-layer mounts, removal
// rules, crash cleanup, concurrency, compression kinds and usage.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { BerthError } from '../../src/errors';
import { findExecutable } from '../../src/snapshotter/exec';
import { readMountInfo } from '../../src/util/mountinfo';
import { Snapshotter } from '../../src/snapshotter/snapshotter';
import { silentLogger } from '../../src/log/logger';
import { findHelper } from '../../src/runtime/handlers';
import { useLauncher } from '../../src/util/launch';
import { buildTar, chainIds, sha256Digest } from '../helpers/tar_writer';
import {
  GZIP,
  TAR,
  ZSTD,
  applyTar,
  assertNoMountsUnder,
  destroyEnv,
  fakeChainId,
  makeEnv,
  streamOf,
  type Env,
} from './fixtures';

function isKind(kind: string, re?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.kind, kind, err.message);
    if (re) assert.match(err.message, re);
    return true;
  };
}

const LAUNCHER = findHelper('berth-launch', 'BERTH_LAUNCH');

describe('snapshotter: overlay snapshots', function () {
  let env: Env;

  beforeEach(async () => {
    env = await makeEnv();
  });
  afterEach(async () => {
    const base = env.base;
    await destroyEnv(env);
    await assertNoMountsUnder(base);
  });

  /** Layer 1 made by GNU tar from a busybox rootfs; layers 2-3 crafted with whiteouts. */
  async function busyboxImage(): Promise<string[]> {
    const rootfs = path.join(env.base, 'rootfs');
    for (const d of ['bin', 'etc', 'opt', 'keep', 'srv', 'gone/sub']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
    fs.symlinkSync('busybox', path.join(rootfs, 'bin', 'sh'));
    fs.symlinkSync('busybox', path.join(rootfs, 'bin', 'cat'));
    fs.writeFileSync(path.join(rootfs, 'etc', 'hostname'), 'one\n');
    fs.writeFileSync(path.join(rootfs, 'etc', 'motd'), 'hello\n');
    fs.writeFileSync(path.join(rootfs, 'opt', 'a'), 'a');
    fs.writeFileSync(path.join(rootfs, 'opt', 'b'), 'b');
    fs.writeFileSync(path.join(rootfs, 'keep', 'k1'), 'k1');
    fs.writeFileSync(path.join(rootfs, 'srv', 'old'), 'old');
    fs.writeFileSync(path.join(rootfs, 'gone', 'sub', 'f'), 'f');
    const tar1 = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-cf', '-', '.'], {
      maxBuffer: 64 * 1024 * 1024,
    });
    fs.rmSync(rootfs, { recursive: true });
    const tar2 = buildTar([
      { name: 'etc/.wh.hostname' },
      { name: 'opt/.wh..wh..opq' },
      { name: 'opt/c', body: 'c' },
      { name: 'keep/k2', body: 'k2' },
      { name: 'data/f1', body: 'linked', mode: 0o640, uid: 1000, gid: 1000 },
      { name: 'data/f2', type: 'hardlink', linkName: 'data/f1' },
      { name: '.wh.gone' },
    ]);
    const tar3 = buildTar([
      // a whiteout then a dir of the same name: the new dir must not show the old contents
      { name: '.wh.keep' },
      { name: 'keep/', type: 'dir' },
      { name: 'keep/k3', body: 'k3' },
      // same, with the dir only implied by a file under it
      { name: '.wh.srv' },
      { name: 'srv/new', body: 'new' },
      { name: 'etc/motd', body: 'changed\n' },
    ]);
    const tars = [tar1, tar2, tar3];
    const chains = chainIds(tars.map((t) => sha256Digest(t)));
    for (let i = 0; i < tars.length; i++) {
      await applyTar(env.snap, tars[i] as Buffer, chains[i] as string, chains[i - 1], i === 1 ? TAR : GZIP);
    }
    return chains;
  }

  it('mounts a multi-layer image with whiteouts and opaque dirs as the right merged view', async () => {
    const chains = await busyboxImage();
    const top = chains[2] as string;
    await env.snap.prepare('ctr1', top);
    const target = path.join(env.base, 'merged');
    fs.mkdirSync(target);
    await env.snap.mount('ctr1', target);
    try {
      const ls = (d: string): string[] => fs.readdirSync(path.join(target, d)).sort();
      assert.deepEqual(ls('.'), ['bin', 'data', 'etc', 'keep', 'opt', 'srv']);
      assert.deepEqual(ls('srv'), ['new']);
      assert.deepEqual(ls('etc'), ['motd']);
      assert.equal(fs.readFileSync(path.join(target, 'etc', 'motd'), 'utf8'), 'changed\n');
      assert.deepEqual(ls('opt'), ['c']);
      assert.deepEqual(ls('keep'), ['k3']);
      const f1 = fs.statSync(path.join(target, 'data', 'f1'));
      const f2 = fs.statSync(path.join(target, 'data', 'f2'));
      assert.equal(f1.ino, f2.ino, 'hard link not preserved');
      assert.equal(f1.nlink, 2);
      // busybox really runs from the merged tree
      const out = execFileSync('chroot', [target, '/bin/sh', '-c', 'cat /opt/c; echo written > /new'], {
        encoding: 'utf8',
      });
      assert.equal(out, 'c');
      fs.rmSync(path.join(target, 'opt', 'c'));
    } finally {
      await env.snap.unmount(target);
    }
    await env.snap.unmount(target); // idempotent
    // writes went to the active snapshot's upper dir, not the layers
    const upper = env.snap.path('ctr1');
    assert.equal(fs.readFileSync(path.join(upper, 'new'), 'utf8'), 'written\n');
    assert.ok(fs.lstatSync(path.join(upper, 'opt', 'c')).isCharacterDevice(), 'delete should leave a whiteout');
    assert.equal(fs.readFileSync(path.join(env.snap.path(top), 'keep', 'k3'), 'utf8'), 'k3');

    // a committed snapshot mounts read-only
    const ro = path.join(env.base, 'ro');
    fs.mkdirSync(ro);
    await env.snap.mount(chains[1] as string, ro);
    try {
      assert.deepEqual(fs.readdirSync(path.join(ro, 'opt')), ['c']);
      assert.throws(() => fs.writeFileSync(path.join(ro, 'x'), 'x'), /EROFS/);
    } finally {
      await env.snap.unmount(ro);
    }
    await env.snap.mount(chains[0] as string, ro); // a single layer (over an empty dir)
    try {
      assert.deepEqual(fs.readdirSync(path.join(ro, 'opt')).sort(), ['a', 'b']);
      assert.throws(() => fs.writeFileSync(path.join(ro, 'x'), 'x'), /EROFS/);
    } finally {
      await env.snap.unmount(ro);
    }
  });

  it('keeps modes (incl. setuid/sticky), owners, mtimes, devices, symlinks and xattrs', async () => {
    const tar = buildTar([
      { name: 'd/', type: 'dir', mode: 0o1750, uid: 11, gid: 12, mtime: 1_500_000_000 },
      { name: 'd/suid', body: '#!', mode: 0o4755, uid: 1000, gid: 1000, mtime: 1_400_000_000 },
      { name: 'd/sgid', body: '', mode: 0o2711, uid: 0, gid: 50, mtime: 1_400_000_001 },
      { name: 'd/link', type: 'symlink', linkName: '/nowhere', uid: 7, gid: 8, mtime: 1_300_000_000 },
      { name: 'd/null', type: 'char', devMajor: 1, devMinor: 3, mode: 0o666, mtime: 1_200_000_000 },
      { name: 'd/blk', type: 'block', devMajor: 7, devMinor: 200, mode: 0o600 },
      { name: 'd/fifo', type: 'fifo', mode: 0o620 },
      {
        name: 'd/cap',
        body: 'x',
        mode: 0o755,
        pax: {
          'SCHILY.xattr.user.note': 'hi',
          'SCHILY.xattr.security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex'),
          mtime: '1600000000.5',
        },
      },
    ]);
    const chain = fakeChainId('meta');
    await applyTar(env.snap, tar, chain);
    const d = env.snap.path(chain);
    const st = (p: string): fs.Stats => fs.lstatSync(path.join(d, p));
    assert.equal(st('d').mode & 0o7777, 0o1750);
    assert.deepEqual([st('d').uid, st('d').gid, st('d').mtimeMs], [11, 12, 1_500_000_000_000]);
    assert.equal(st('d/suid').mode & 0o7777, 0o4755);
    assert.deepEqual([st('d/suid').uid, st('d/suid').gid, st('d/suid').mtimeMs], [1000, 1000, 1_400_000_000_000]);
    assert.equal(st('d/sgid').mode & 0o7777, 0o2711);
    assert.equal(st('d/sgid').gid, 50);
    assert.ok(st('d/link').isSymbolicLink());
    assert.equal(fs.readlinkSync(path.join(d, 'd/link')), '/nowhere');
    assert.deepEqual([st('d/link').uid, st('d/link').gid, st('d/link').mtimeMs], [7, 8, 1_300_000_000_000]);
    assert.ok(st('d/null').isCharacterDevice());
    assert.equal(st('d/null').rdev, (1 << 8) | 3);
    assert.equal(st('d/null').mode & 0o7777, 0o666);
    assert.equal(st('d/null').mtimeMs, 1_200_000_000_000);
    assert.ok(st('d/blk').isBlockDevice());
    assert.equal(st('d/blk').rdev, (7 << 8) | 200);
    assert.ok(st('d/fifo').isFIFO());
    assert.equal(st('d/fifo').mode & 0o7777, 0o620);
    assert.equal(st('d/cap').mtimeMs, 1_600_000_000_500);
    const dump = execFileSync('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', path.join(d, 'd/cap')], {
      encoding: 'utf8',
    });
    assert.match(dump, /user\.note=0x6869/);
    assert.match(dump, /security\.capability=0x0100000200200000/);
  });

  it('mounts an image of 128 layers (short relative lowerdirs fit the one-page option limit)', async () => {
    const diffIds: string[] = [];
    const tars: Buffer[] = [];
    for (let i = 0; i < 128; i++) {
      const tar = buildTar([{ name: `layers/l${i}`, body: String(i) }, { name: 'top', body: String(i) }]);
      tars.push(tar);
      diffIds.push(sha256Digest(tar));
    }
    const chains = chainIds(diffIds);
    for (let i = 0; i < 128; i++) {
      await applyTar(env.snap, tars[i] as Buffer, chains[i] as string, chains[i - 1], TAR);
    }
    await env.snap.prepare('big', chains[127] as string);
    const options = env.snap.mountOptions('big');
    assert.ok(options.length < 4096);
    const target = path.join(env.base, 'big');
    fs.mkdirSync(target);
    const started = process.hrtime.bigint();
    await env.snap.mount('big', target);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    try {
      assert.equal(fs.readdirSync(path.join(target, 'layers')).length, 128);
      assert.equal(fs.readFileSync(path.join(target, 'top'), 'utf8'), '127');
      assert.equal(fs.readFileSync(path.join(target, 'layers', 'l0'), 'utf8'), '0');
    } finally {
      await env.snap.unmount(target);
    }
    console.log(`      128-layer overlay mount took ${ms.toFixed(1)} ms (options ${options.length} bytes)`);
  });

  it('prepares many snapshots at once, each with its own directory and id', async () => {
    const [base] = chainIds([fakeChainId('l1')]) as [string];
    await applyTar(env.snap, buildTar([{ name: 'a', body: 'a' }]), base);
    const keys = Array.from({ length: 10 }, (_x, i) => `ctr${i}`);
    await Promise.all(keys.map((k) => env.snap.prepare(k, base)));
    const dirs = keys.map((k) => env.snap.path(k));
    assert.equal(new Set(dirs).size, keys.length);
    for (const d of dirs) assert.deepEqual(fs.readdirSync(d), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });

  it('refuses to remove a committed snapshot with children, and a mounted one', async () => {
    const [base, child] = chainIds([fakeChainId('l1'), fakeChainId('l2')]) as [string, string];
    await applyTar(env.snap, buildTar([{ name: 'a', body: 'a' }]), base);
    await applyTar(env.snap, buildTar([{ name: 'b', body: 'b' }]), child, base);
    await env.snap.prepare('ctr', child);
    await assert.rejects(env.snap.prepare('ctr', child), isKind('ALREADY_EXISTS'));
    await assert.rejects(env.snap.prepare('ctr2', fakeChainId('nope')), isKind('NOT_FOUND'));
    // The refused prepares made their directories first: nothing of them is left.
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    await assert.rejects(env.snap.remove(base), isKind('FAILED_PRECONDITION', /child/));
    await assert.rejects(env.snap.remove(child), isKind('FAILED_PRECONDITION', /child/));
    const target = path.join(env.base, 'm');
    fs.mkdirSync(target);
    await env.snap.mount('ctr', target, true);
    assert.deepEqual(fs.readdirSync(target).sort(), ['a', 'b']);
    assert.throws(() => fs.writeFileSync(path.join(target, 'x'), 'x'), /EROFS/);
    await assert.rejects(env.snap.remove('ctr'), isKind('FAILED_PRECONDITION', /mounted/));
    await assert.rejects(env.snap.remove(base), isKind('FAILED_PRECONDITION'));
    await env.snap.unmount(target);
    await env.snap.remove('ctr');
    await env.snap.mount(child, target); // a read-only view of a committed snapshot also pins it
    await assert.rejects(env.snap.remove(child), isKind('FAILED_PRECONDITION', /mounted/));
    await env.snap.unmount(target);
    await env.snap.remove(child);
    await env.snap.remove(base);
    await assert.rejects(env.snap.remove(base), isKind('NOT_FOUND'));
    assert.deepEqual(await env.snap.list(), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'snapshots')), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });

  for (const via of ['mount(8)', 'berth-launch'] as const) {
    it(`unmounts every mount stacked on a target whose path has a space and a backslash (through ${via})`, async () => {
      if (via === 'berth-launch') useLauncher(LAUNCHER);
      try {
        await unmountsStacked();
      } finally {
        useLauncher(undefined);
      }
    });
  }

  async function unmountsStacked(): Promise<void> {
    const layer = fakeChainId('sp1');
    await applyTar(env.snap, buildTar([{ name: 'a', body: 'a' }]), layer);
    await env.snap.prepare('ctr', layer);
    const target = path.join(env.base, 'm n\\x');
    fs.mkdirSync(target);
    await env.snap.mount('ctr', target, true);
    await env.snap.mount('ctr', target, true);
    const at = async (): Promise<number> => (await readMountInfo()).filter((m) => m.mountPoint === target).length;
    assert.equal(await at(), 2);
    await env.snap.unmount(target);
    assert.equal(await at(), 0);
    await env.snap.unmount(target); // nothing left: done
    await env.snap.remove('ctr');
    await env.snap.remove(layer);
  }

  it('lists snapshots and survives a restart; init() cleans up after a crash', async () => {
    const [base] = chainIds([fakeChainId('l1')]) as [string];
    await applyTar(env.snap, buildTar([{ name: 'a', body: 'a' }]), base);
    await env.snap.prepare('ctr', base);
    // Simulate a crash: a half-extracted layer, a half-done removal, an orphan renamed into
    // place without metadata, and a half-written metadata file.
    fs.mkdirSync(path.join(env.root, 'tmp', 'extract-abc', 'fs', 'usr'), { recursive: true });
    fs.writeFileSync(path.join(env.root, 'tmp', 'extract-abc', 'fs', 'usr', 'half'), 'x');
    fs.mkdirSync(path.join(env.root, 'tmp', 'remove-def', 'dir'), { recursive: true });
    fs.mkdirSync(path.join(env.root, 'snapshots', '999', 'fs'), { recursive: true });
    fs.writeFileSync(path.join(env.root, 'metadata.json.tmp'), '{"trunc');

    const again = new Snapshotter(env.root, silentLogger());
    await again.init();
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    assert.equal(fs.existsSync(path.join(env.root, 'snapshots', '999')), false);
    assert.equal(fs.existsSync(path.join(env.root, 'metadata.json.tmp')), false);
    assert.ok(again.hasCommitted(base));
    const list = (await again.list()).sort((a, b) => a.key.localeCompare(b.key));
    assert.deepEqual(list, [
      { key: 'ctr', kind: 'active', parent: base },
      { key: base, kind: 'committed', parent: undefined },
    ]);
    assert.equal(fs.readFileSync(path.join(again.path(base), 'a'), 'utf8'), 'a');
  });

  it('saves its metadata through the one temp file, swapped with the old metadata: no inode made or freed per save', async () => {
    const [base] = chainIds([fakeChainId('l1')]) as [string];
    await applyTar(env.snap, buildTar([{ name: 'a', body: 'a' }]), base);
    await env.snap.prepare('warm', base);
    const inodes = (): number[] => ['metadata.json', 'metadata.json.tmp'].map((n) => fs.statSync(path.join(env.root, n)).ino).sort();
    const warm = inodes();
    for (let i = 0; i < 5; i++) {
      await env.snap.prepare(`ctr-${i}`, base);
      await env.snap.remove(`ctr-${i}`);
    }
    assert.deepEqual(inodes(), warm);
    const again = new Snapshotter(env.root, silentLogger());
    await again.init();
    assert.deepEqual((await again.list()).map((i) => i.key).sort(), [base, 'warm'].sort());
  });

  it('shares one unpack between concurrent calls for the same chain ID', async () => {
    const tar = buildTar([{ name: 'x', body: 'x'.repeat(100_000) }]);
    const chain = fakeChainId('shared');
    const diffId = sha256Digest(tar);
    const s1 = streamOf(zlib.gzipSync(tar));
    const s2 = streamOf(zlib.gzipSync(tar));
    await Promise.all([
      env.snap.applyLayer({ chainId: chain, diffId, mediaType: GZIP, stream: s1 }),
      env.snap.applyLayer({ chainId: chain, diffId, mediaType: GZIP, stream: s2 }),
    ]);
    assert.equal((await env.snap.list()).length, 1);
    assert.equal(fs.readdirSync(path.join(env.root, 'snapshots')).length, 1);
    assert.ok(s2.destroyed, 'the second stream should be released');
    // already committed: resolves without reading
    const s3 = streamOf(tar);
    await env.snap.applyLayer({ chainId: chain, diffId, mediaType: TAR, stream: s3 });
    assert.ok(s3.destroyed);
  });

  it('refuses a layer whose parent is not unpacked', async () => {
    await assert.rejects(
      applyTar(env.snap, buildTar([{ name: 'a' }]), fakeChainId('c'), fakeChainId('missing')),
      isKind('FAILED_PRECONDITION', /parent/),
    );
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });

  it('unpacks zstd layers through the zstd CLI', async function () {
    const zstd = findExecutable('zstd');
    if (zstd === undefined) this.skip();
    const tar = buildTar([{ name: 'z/file', body: 'zstd!'.repeat(1000) }]);
    const blob = execFileSync(zstd as string, ['-q', '-c'], { input: tar });
    const chain = fakeChainId('zstd');
    await env.snap.applyLayer({ chainId: chain, diffId: sha256Digest(tar), mediaType: ZSTD, stream: streamOf(blob) });
    assert.equal(fs.readFileSync(path.join(env.snap.path(chain), 'z', 'file'), 'utf8'), 'zstd!'.repeat(1000));
    await assert.rejects(
      env.snap.applyLayer({
        chainId: fakeChainId('zbad'),
        diffId: sha256Digest(tar),
        mediaType: ZSTD,
        stream: streamOf(Buffer.from('definitely not zstd data')),
      }),
      isKind('INVALID_ARGUMENT', /zstd/),
    );
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });

  it('reports usage of the snapshot root and its filesystem mount point', async () => {
    const before = await env.snap.usage();
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await applyTar(
      env.snap,
      buildTar([
        { name: 'big', body: big },
        { name: 'big2', type: 'hardlink', linkName: 'big' },
        { name: 'small', body: 's' },
      ]),
      fakeChainId('u'),
    );
    const after = await env.snap.usage();
    const grew = after.bytes - before.bytes;
    assert.ok(grew >= BigInt(big.length) && grew < BigInt(big.length) * 2n, `grew by ${grew}`); // hard link counted once
    assert.ok(after.inodes - before.inodes >= 4n); // snapshot dir, fs, big, small
    const mounts = (await readMountInfo()).map((m) => m.mountPoint);
    assert.ok(mounts.includes(after.mountpoint));
    assert.ok(env.root.startsWith(after.mountpoint));
  });
});
