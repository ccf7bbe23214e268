// Hostile layers: every entry that tries to reach outside its snapshot dir is
// refused, names itself in the error, and leaves nothing behind; the sentinel
// "host" dir outside the snapshotter root stays exactly as it was.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { buildTar, type TarSpec } from '../helpers/tar_writer';
import { applyTar, assertOutsideUntouched, destroyEnv, fakeChainId, makeEnv, type Env } from './fixtures';

describe('snapshotter: hostile layers', function () {
  let env: Env;
  let n = 0;

  beforeEach(async () => {
    env = await makeEnv();
  });
  afterEach(async () => {
    await destroyEnv(env);
  });

  /** Applies a layer expected to fail; checks the error and that nothing was left anywhere. */
  async function expectRejected(entries: TarSpec[], entryName: string, reason: RegExp): Promise<void> {
    const chainId = fakeChainId(`bad-${n++}`);
    await assert.rejects(applyTar(env.snap, buildTar(entries), chainId), (err: unknown) => {
      assert.ok(err instanceof BerthError, `not a BerthError: ${String(err)}`);
      assert.equal(err.kind, 'INVALID_ARGUMENT', err.message);
      assert.ok(err.message.includes(JSON.stringify(entryName)), `error does not name ${entryName}: ${err.message}`);
      assert.match(err.message, reason);
      return true;
    });
    assert.equal(env.snap.hasCommitted(chainId), false);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), [], 'temp extraction dir left behind');
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'snapshots')), []);
    assert.deepEqual(await env.snap.list(), []);
    assertOutsideUntouched(env);
  }

  /** Applies a layer expected to succeed, confined to its snapshot; returns the layer dir. */
  async function expectConfined(entries: TarSpec[]): Promise<string> {
    const chainId = fakeChainId(`ok-${n++}`);
    await applyTar(env.snap, buildTar(entries), chainId);
    assertOutsideUntouched(env);
    return env.snap.path(chainId);
  }

  const rel = (): string => path.relative('/', env.outside); // outside, as a path without the leading '/'
  const dotdots = (): string => '../'.repeat(12);

  it('refuses ".." traversal in a file name', async () => {
    await expectRejected([{ name: `${dotdots()}${rel()}/evil`, body: 'x' }], `${dotdots()}${rel()}/evil`, /\.\./);
  });

  it('refuses ".." hidden in the middle of a name', async () => {
    await expectRejected(
      [{ name: 'a/', type: 'dir' }, { name: `a/../../../../../../../../../${rel()}/b/evil`, body: 'x' }],
      `a/../../../../../../../../../${rel()}/b/evil`,
      /traversal/,
    );
  });

  it('refuses ".." arriving through a PAX path and a GNU long name', async () => {
    const long = `${'d/'.repeat(60)}${dotdots()}${dotdots()}${rel()}/evil`;
    await expectRejected([{ name: long, body: 'x' }], long, /\.\./);
    await expectRejected([{ name: long, body: 'x', gnuLong: true }], long, /\.\./);
    await expectRejected(
      [{ name: 'short', body: 'x', pax: { path: `../${rel()}/evil` } }],
      `../${rel()}/evil`,
      /\.\./,
    );
  });

  it('keeps absolute names inside the layer (leading "/" stripped)', async () => {
    const layer = await expectConfined([{ name: `${env.outside}/b/abs`, body: 'inside' }]);
    assert.equal(fs.readFileSync(path.join(layer, rel(), 'b', 'abs'), 'utf8'), 'inside');
  });

  it('refuses writing through a symlink planted earlier in the same layer (absolute target)', async () => {
    await expectRejected(
      [
        { name: 'link', type: 'symlink', linkName: env.outside },
        { name: 'link/evil', body: 'x' },
      ],
      'link/evil',
      /symlink/,
    );
  });

  it('refuses writing through a relative symlink and a nested one', async () => {
    await expectRejected(
      [
        { name: 'a/b/', type: 'dir' },
        { name: 'a/b/up', type: 'symlink', linkName: `${dotdots()}${rel()}` },
        { name: 'a/b/up/b/evil', body: 'x' },
      ],
      'a/b/up/b/evil',
      /symlink/,
    );
  });

  it('refuses a directory entry through a symlink', async () => {
    await expectRejected(
      [
        { name: 'link', type: 'symlink', linkName: env.outside },
        { name: 'link/newdir/', type: 'dir', mode: 0o777 },
      ],
      'link/newdir/',
      /symlink/,
    );
  });

  it('replaces a symlink by a file of the same name instead of writing through it (incl. setuid mode)', async () => {
    const layer = await expectConfined([
      { name: 'f', type: 'symlink', linkName: path.join(env.outside, 'hostfile') },
      { name: 'f', body: 'layer', mode: 0o4755, uid: 0, gid: 0 },
    ]);
    const st = fs.lstatSync(path.join(layer, 'f'));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o7777, 0o4755);
    assert.equal(fs.readFileSync(path.join(layer, 'f'), 'utf8'), 'layer');
  });

  it('replaces a symlink by a directory instead of chmod-ing through it', async () => {
    const layer = await expectConfined([
      { name: 'd', type: 'symlink', linkName: path.join(env.outside, 'b') },
      { name: 'd/', type: 'dir', mode: 0o777, uid: 1234 },
    ]);
    const st = fs.lstatSync(path.join(layer, 'd'));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o777);
    assert.equal(st.uid, 1234);
  });

  it('does not chmod/chown a directory whose ancestor was later replaced by a symlink', async () => {
    await expectConfined([
      { name: 'a/', type: 'dir' },
      { name: 'a/b/', type: 'dir', mode: 0o777, uid: 4321, mtime: 5 },
      { name: 'a', type: 'symlink', linkName: env.outside },
    ]);
  });

  it('refuses hard links that leave the layer', async () => {
    await expectRejected(
      [{ name: 'h', type: 'hardlink', linkName: `${dotdots()}${rel()}/hostfile` }],
      'h',
      /\.\./,
    );
    // An absolute target is read inside the layer, where it does not exist.
    await expectRejected(
      [{ name: 'h', type: 'hardlink', linkName: path.join(env.outside, 'hostfile') }],
      'h',
      /not in this layer|does not exist/,
    );
  });

  it('refuses hard links whose target goes through a symlink', async () => {
    await expectRejected(
      [
        { name: 'l', type: 'symlink', linkName: env.outside },
        { name: 'h', type: 'hardlink', linkName: 'l/hostfile' },
      ],
      'h',
      /symlink/,
    );
  });

  it('a hard link to a symlink links the symlink itself, and rewriting it does not touch the host', async () => {
    const layer = await expectConfined([
      { name: 'l', type: 'symlink', linkName: path.join(env.outside, 'hostfile') },
      { name: 'h', type: 'hardlink', linkName: 'l' },
      { name: 'h', body: 'overwritten', mode: 0o4777 },
    ]);
    assert.ok(fs.lstatSync(path.join(layer, 'l')).isSymbolicLink());
    assert.equal(fs.readFileSync(path.join(layer, 'h'), 'utf8'), 'overwritten');
  });

  it('rewriting a hard-linked name replaces it rather than changing the shared inode', async () => {
    const layer = await expectConfined([
      { name: 'f', body: 'original' },
      { name: 'h', type: 'hardlink', linkName: 'f' },
      { name: 'h', body: 'new' },
    ]);
    assert.equal(fs.readFileSync(path.join(layer, 'f'), 'utf8'), 'original');
    assert.equal(fs.readFileSync(path.join(layer, 'h'), 'utf8'), 'new');
  });

  it('never opens a planted fifo or device node: a file of the same name replaces it', async () => {
    const layer = await expectConfined([
      { name: 'p', type: 'fifo' },
      { name: 'p', body: 'not blocked' },
      { name: 'n', type: 'char', devMajor: 1, devMinor: 3 }, // /dev/null
      { name: 'n', body: 'not discarded' },
    ]);
    assert.equal(fs.readFileSync(path.join(layer, 'p'), 'utf8'), 'not blocked');
    assert.equal(fs.readFileSync(path.join(layer, 'n'), 'utf8'), 'not discarded');
  });

  it('refuses a path through a device node or a file', async () => {
    await expectRejected(
      [
        { name: 'n', type: 'char', devMajor: 1, devMinor: 3 },
        { name: 'n/x', body: 'x' },
      ],
      'n/x',
      /not a directory/,
    );
  });

  it('refuses whiteouts and opaque markers through a symlink', async () => {
    await expectRejected(
      [
        { name: 'w', type: 'symlink', linkName: env.outside },
        { name: 'w/.wh.hostfile', body: '' },
      ],
      'w/.wh.hostfile',
      /symlink/,
    );
    await expectRejected(
      [
        { name: 'w', type: 'symlink', linkName: env.outside },
        { name: 'w/b/.wh..wh..opq', body: '' },
      ],
      'w/b/.wh..wh..opq',
      /symlink/,
    );
  });

  it('refuses a non-directory entry naming the layer root, and malformed whiteouts', async () => {
    await expectRejected([{ name: './', type: 'symlink', linkName: env.outside }], './', /layer root/);
    await expectRejected([{ name: 'a/.wh...', body: '' }], 'a/.wh...', /whiteout/);
  });

  it('does not take trusted.* (overlay-steering) xattrs from a layer', async () => {
    const layer = await expectConfined([
      {
        name: 'd/',
        type: 'dir',
        pax: { 'SCHILY.xattr.trusted.overlay.redirect': `/${rel()}`, 'SCHILY.xattr.user.ok': 'yes' },
      },
    ]);
    const { execFileSync } = await import('node:child_process');
    const dump = execFileSync('getfattr', ['-d', '-m', '-', '--absolute-names', path.join(layer, 'd')], {
      encoding: 'utf8',
    });
    assert.match(dump, /user\.ok="yes"/);
    assert.doesNotMatch(dump, /trusted\.overlay/);
  });

  it('refuses a layer whose content does not match its diff ID, leaving nothing behind', async () => {
    const tar = buildTar([{ name: 'f', body: 'x' }]);
    const chainId = fakeChainId('mismatch');
    await assert.rejects(
      env.snap.applyLayer({
        chainId,
        diffId: fakeChainId('something else'),
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        stream: (await import('./fixtures')).streamOf(tar),
      }),
      (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT' && /diff ID/.test(err.message),
    );
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'snapshots')), []);
  });

  it('fails cleanly when the layer stream itself errors mid-way (e.g. the registry connection drops)', async () => {
    const { Readable } = await import('node:stream');
    const tar = buildTar([
      { name: 'd/a', body: 'a'.repeat(20000) },
      { name: 'd/b', body: 'b'.repeat(20000) },
    ]);
    const stream = new Readable({ read() {} });
    stream.push(tar.subarray(0, 25000));
    setTimeout(() => stream.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 20);
    const chainId = fakeChainId('drop');
    const args = { chainId, diffId: fakeChainId('whatever'), mediaType: 'application/vnd.oci.image.layer.v1.tar' };
    // two concurrent callers share the unpack and both see its failure
    const results = await Promise.allSettled([
      env.snap.applyLayer({ ...args, stream }),
      env.snap.applyLayer({ ...args, stream: Readable.from([tar]) }),
    ]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      const reason: unknown = (r as PromiseRejectedResult).reason;
      assert.ok(reason instanceof BerthError && reason.kind === 'UNAVAILABLE', String(reason));
      assert.match(reason.message, /socket hang up/);
    }
    assert.equal(env.snap.hasCommitted(chainId), false);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'snapshots')), []);
  });

  it('refuses corrupt and truncated streams', async () => {
    const tar = buildTar([{ name: 'f', body: 'x'.repeat(5000) }]);
    const { streamOf } = await import('./fixtures');
    const diffId = fakeChainId('x');
    for (const [blob, mediaType, why] of [
      [tar.subarray(0, 1000), 'application/vnd.oci.image.layer.v1.tar', /truncated/],
      [Buffer.from('not gzip at all'), 'application/vnd.oci.image.layer.v1.tar+gzip', /corrupt|header/],
      [Buffer.alloc(600, 0x41), 'application/vnd.oci.image.layer.v1.tar', /checksum|octal/],
      [tar, 'application/x-unknown', /media type/],
    ] as const) {
      await assert.rejects(
        env.snap.applyLayer({ chainId: fakeChainId(`c${n++}`), diffId, mediaType, stream: streamOf(blob) }),
        (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT' && why.test(err.message),
      );
    }
    assert.deepEqual(fs.readdirSync(path.join(env.root, 'tmp')), []);
  });
});
