// diskUsage counts like `du`: allocated blocks and inodes, hard links once, symlinks not followed.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diskUsage } from '../../src/util/disk_usage';

describe('diskUsage', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-du-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('agrees with du: hard links count once, symlinks are not followed, nested directories are walked', async () => {
    fs.mkdirSync(path.join(dir, 'a', 'b'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a', 'b', 'big'), Buffer.alloc(256 * 1024, 1));
    fs.linkSync(path.join(dir, 'a', 'b', 'big'), path.join(dir, 'a', 'hardlink'));
    fs.symlinkSync('/usr', path.join(dir, 'a', 'sym'));
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(dir, `f${i}`), 'x');
    const u = await diskUsage(dir);
    // du -s without the root directory itself: inodes = entries under it.
    const duBlocks = BigInt(execFileSync('du', ['-s', '-B1', dir], { encoding: 'utf8' }).split('\t')[0]);
    const rootBlocks = fs.lstatSync(dir, { bigint: true }).blocks * 512n;
    assert.equal(u.bytes, duBlocks - rootBlocks);
    assert.equal(u.inodes, BigInt(2 + 1 + 1 + 300)); // a, a/b, big (once), sym, f0..f299
    assert.deepEqual(await diskUsage(path.join(dir, 'missing')), { bytes: 0n, inodes: 0n });
  });
});
