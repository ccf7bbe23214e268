// Directories named by requests: pseudo-filesystems refused, mkdir -p bounded.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDirs, pseudoFsProblem } from '../../src/util/dirs';

describe('request directories', () => {
  let tmp: string;
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dirs-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('makeDirs fails at once inside /proc/<pid>, where a recursive mkdir never ends', async () => {
    const t0 = Date.now();
    await assert.rejects(makeDirs('/proc/1/x/y', 0o755), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    assert.ok(Date.now() - t0 < 1000);
  });

  it('makeDirs creates every missing level, keeps existing ones and refuses a file in the way', async () => {
    await makeDirs(path.join(tmp, 'a', 'b', 'c'), 0o750);
    assert.equal(fs.statSync(path.join(tmp, 'a', 'b', 'c')).mode & 0o777, 0o750 & ~process.umask());
    await makeDirs(path.join(tmp, 'a', 'b'), 0o700);
    fs.writeFileSync(path.join(tmp, 'file'), '');
    await assert.rejects(makeDirs(path.join(tmp, 'file', 'x'), 0o755), /ENOTDIR/);
    await assert.rejects(makeDirs(path.join(tmp, 'file'), 0o755), /ENOTDIR/);
  });

  it('makeDirs gives every level it creates (made leaf first, parents on demand) the mode, and accepts a symlink to a directory', async () => {
    await makeDirs(path.join(tmp, 'm', 'n', 'o'), 0o710);
    for (const d of ['m', 'm/n', 'm/n/o']) assert.equal(fs.statSync(path.join(tmp, d)).mode & 0o777, 0o710 & ~process.umask(), d);
    fs.symlinkSync(path.join(tmp, 'm'), path.join(tmp, 'link'));
    await makeDirs(path.join(tmp, 'link'), 0o755);
    await makeDirs(path.join(tmp, 'link', 'p'), 0o755);
    assert.ok(fs.statSync(path.join(tmp, 'm', 'p')).isDirectory());
  });

  it('pseudoFsProblem refuses /proc, /sys and /dev by path and through symlinks, and accepts ordinary directories', () => {
    assert.match(pseudoFsProblem('/proc/1/x') ?? '', /under \/proc/);
    assert.match(pseudoFsProblem('/var/../sys/kernel/x') ?? '', /under \/sys/);
    assert.match(pseudoFsProblem('/dev/shm/logs') ?? '', /under \/dev/);
    fs.symlinkSync('/sys/kernel', path.join(tmp, 'k'));
    assert.match(pseudoFsProblem(path.join(tmp, 'k', 'new', 'dir')) ?? '', /resolves to \/sys\/kernel/);
    assert.equal(pseudoFsProblem(path.join(tmp, 'not', 'yet', 'there')), undefined);
  });
});
