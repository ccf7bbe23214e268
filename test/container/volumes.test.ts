// resolveInRoot: image sub paths stay inside the image whatever they say.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveInRoot } from '../../src/container/volumes';

describe('container: image sub paths resolved inside the image', () => {
  let root: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-root-'));
    fs.mkdirSync(path.join(root, 'etc'));
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'image passwd');
    fs.mkdirSync(path.join(root, 'data', 'deep'), { recursive: true });
    fs.symlinkSync('/etc', path.join(root, 'data', 'abs'));
    fs.symlinkSync('../../../../../../etc/passwd', path.join(root, 'data', 'rel'));
    fs.symlinkSync('loop2', path.join(root, 'loop1'));
    fs.symlinkSync('loop1', path.join(root, 'loop2'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('follows absolute and relative symlinks and ".." within the root', () => {
    assert.equal(resolveInRoot(root, 'data/abs/passwd'), path.join(root, 'etc', 'passwd'));
    assert.equal(resolveInRoot(root, 'data/rel'), path.join(root, 'etc', 'passwd'));
    assert.equal(resolveInRoot(root, '../../../etc'), path.join(root, 'etc'));
    assert.equal(resolveInRoot(root, '/data/./deep/../deep'), path.join(root, 'data', 'deep'));
    assert.equal(resolveInRoot(root, ''), root);
  });

  it('refuses what does not exist and symlink loops', () => {
    assert.throws(() => resolveInRoot(root, 'data/none'), /does not exist/);
    assert.throws(() => resolveInRoot(root, 'etc/passwd/x'), /does not exist/);
    assert.throws(() => resolveInRoot(root, 'loop1'), /too many symlinks/);
  });
});
