// writeFilesAtomic: every file replaced whole with its mode, temp files gone,
// one failing file fails the call without touching the others' old contents.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFilesAtomic } from '../../src/util/atomic_file';

describe('writeFilesAtomic', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-atomic-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('replaces each file whole, with the mode asked for, and leaves no temp file', async () => {
    fs.writeFileSync(path.join(dir, 'a'), 'old a');
    await writeFilesAtomic(
      [
        { file: path.join(dir, 'a'), data: 'new a' },
        { file: path.join(dir, 'b'), data: Buffer.from('new b') },
      ],
      { mode: 0o644 },
    );
    assert.equal(fs.readFileSync(path.join(dir, 'a'), 'utf8'), 'new a');
    assert.equal(fs.readFileSync(path.join(dir, 'b'), 'utf8'), 'new b');
    assert.equal(fs.statSync(path.join(dir, 'b')).mode & 0o777, 0o644 & ~process.umask());
    assert.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b']);
  });

  it('fails when one file cannot be written, leaving no temp file behind', async () => {
    await assert.rejects(
      writeFilesAtomic([
        { file: path.join(dir, 'ok'), data: 'x' },
        { file: path.join(dir, 'missing', 'f'), data: 'y' },
      ]),
      /ENOENT/,
    );
    assert.ok(fs.readdirSync(dir).every((n) => !n.includes('.tmp')));
  });
});
