// removeTree, through berth-durable.node and through its fallback (mount
// table + fs.rm): it removes a whole tree, never follows a symlink out of it,
// and removes nothing of a tree with a mount anywhere in it (a tmpfs on a
// directory, a bind mount on a file, a mount on the directory itself).
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nativeRemoveTree, removeTree, type NativeRemoveTree } from '../../src/util/remove_tree';

const native = nativeRemoveTree();
const ways: Array<[string, NativeRemoveTree | null]> = [
  ['berth-durable.node', native],
  ['the mount table and fs.rm', null],
];

describe('removeTree', function () {
  let base: string;
  const mounted: string[] = [];

  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rmtree-'));
  });
  afterEach(() => {
    for (const m of mounted.splice(0).reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('has the native module in a built tree', () => {
    assert.ok(native, 'build/berth-durable.node has no removeTree');
  });

  /** dir with files, a fifo, a nested dir, an empty dir and a symlink to a directory outside it. */
  function tree(): { dir: string; outside: string } {
    const dir = path.join(base, 'pod');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(dir, 'a', 'b', 'c'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'empty'));
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'keep'), 'x');
    fs.writeFileSync(path.join(dir, 'hosts'), 'h');
    fs.writeFileSync(path.join(dir, 'a', 'b', 'c', 'deep'), 'd');
    fs.symlinkSync(outside, path.join(dir, 'a', 'link'));
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    return { dir, outside };
  }

  function mount(args: string[], target: string): void {
    execFileSync('mount', [...args, target]);
    mounted.push(target);
  }

  for (const [way, impl] of ways) {
    describe(`through ${way}`, () => {
      it('removes the whole tree and keeps what a symlink in it points to', async () => {
        const { dir, outside } = tree();
        await removeTree(dir, impl);
        assert.equal(fs.existsSync(dir), false);
        assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'x');
      });

      it('is done when the directory does not exist (or its parent)', async () => {
        await removeTree(path.join(base, 'none'), impl);
        await removeTree(path.join(base, 'none', 'deeper'), impl);
      });

      it('removes nothing when a directory below holds a mount', async () => {
        const { dir } = tree();
        mount(['-t', 'tmpfs', 'berth-rmtree'], path.join(dir, 'a', 'b'));
        fs.writeFileSync(path.join(dir, 'a', 'b', 'on-tmpfs'), 't');
        await assert.rejects(removeTree(dir, impl), (err: Error) => {
          assert.match(err.message, new RegExp(`cannot remove ${dir}: still mounted: ${path.join(dir, 'a', 'b')}`));
          return true;
        });
        assert.equal(fs.readFileSync(path.join(dir, 'hosts'), 'utf8'), 'h');
        assert.equal(fs.readFileSync(path.join(dir, 'a', 'b', 'on-tmpfs'), 'utf8'), 't');
      });

      it('removes nothing when a file in it is a bind mount', async () => {
        const { dir, outside } = tree();
        mount(['--bind', path.join(outside, 'keep')], path.join(dir, 'hosts'));
        await assert.rejects(removeTree(dir, impl), /still mounted: .*\/hosts/);
        assert.equal(fs.readFileSync(path.join(dir, 'a', 'b', 'c', 'deep'), 'utf8'), 'd');
        assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'x');
      });

      it('removes nothing when the directory itself is a mount point', async () => {
        const { dir } = tree();
        mount(['--bind', path.join(dir, 'a')], path.join(dir, 'empty'));
        const sub = path.join(dir, 'empty');
        await assert.rejects(removeTree(sub, impl), /still mounted/);
        assert.ok(fs.existsSync(path.join(sub, 'b', 'c', 'deep')));
      });
    });
  }

  it('refuses a tree deeper than it walks, removing nothing', async () => {
    const dir = path.join(base, 'deep');
    const leaf = path.join(dir, ...Array.from({ length: 40 }, () => 'd'));
    fs.mkdirSync(leaf, { recursive: true });
    await assert.rejects(removeTree(dir, native), /ELOOP/);
    assert.ok(fs.existsSync(leaf));
  });
});
