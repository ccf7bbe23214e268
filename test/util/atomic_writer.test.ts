// AtomicWriter through both sets of steps (berth-durable.node and node's fs):
// writes into one directory share its fsyncs, one failing write fails only
// itself, errors look like node's fs errors, and a writer killed in the
// middle of writing leaves every file whole (old or new).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AtomicWriter } from '../../src/util/atomic_file';
import { nativeDurableFs, nodeDurableFs, type DurableFs } from '../../src/util/durable_fs';
import { killMidWay } from '../helpers/kill_mid_way';

/**
 * Steps that count what they have done (replaces once finished) and the
 * directory fsyncs asked for (a syncDir, or a replace that fsyncs its
 * directory itself); those wait for `release` before they start.
 */
function counted(
  steps: DurableFs,
  release: Promise<void> = Promise.resolve(),
): DurableFs & { replaces: number; dirSyncs: number; syncDirJobs: number } {
  const c = {
    replaces: 0,
    dirSyncs: 0,
    /** Directory fsyncs that took a job of their own. */
    syncDirJobs: 0,
    replaceFile: async (tmp: string, target: string, data: Buffer, mode: number, syncFile: boolean, keepOld: boolean, syncDir?: string) => {
      if (syncDir !== undefined) {
        c.dirSyncs++;
        await release;
      }
      const kept = await steps.replaceFile(tmp, target, data, mode, syncFile, keepOld, syncDir);
      c.replaces++;
      return kept;
    },
    syncDir: async (dir: string) => {
      c.dirSyncs++;
      c.syncDirJobs++;
      await release;
      return steps.syncDir(dir);
    },
  };
  return c;
}

const native = nativeDurableFs();

describe('berth-durable.node', () => {
  it('is built and loads', () => {
    assert.ok(native, 'build/berth-durable.node is there (make build)');
  });
});

for (const [name, steps] of [
  ['berth-durable.node', native],
  ["node's fs", nodeDurableFs],
] as const) {
  describe(`atomic writes through ${name}`, () => {
    let dir: string;
    beforeEach(function () {
      if (!steps) this.skip();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-writer-'));
    });
    afterEach(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

    it('replaces a file whole with its mode and leaves no temp file', async () => {
      const writer = new AtomicWriter(steps!);
      fs.writeFileSync(path.join(dir, 'a.json'), 'old');
      await writer.write(path.join(dir, 'a.json'), 'new');
      await writer.write(path.join(dir, 'b.json'), Buffer.from('bee'), { mode: 0o644, syncFile: false });
      assert.equal(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'), 'new');
      assert.equal(fs.statSync(path.join(dir, 'a.json')).mode & 0o777, 0o600);
      assert.equal(fs.readFileSync(path.join(dir, 'b.json'), 'utf8'), 'bee');
      assert.equal(fs.statSync(path.join(dir, 'b.json')).mode & 0o777, 0o644 & ~process.umask());
      assert.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'b.json']);
    });

    it('writes alone in a directory with one job that also fsyncs the directory', async () => {
      const c = counted(steps!);
      const writer = new AtomicWriter(c);
      await writer.write(path.join(dir, 'a.json'), 'one');
      await writer.write(path.join(dir, 'a.json'), 'two');
      assert.equal(c.replaces, 2);
      assert.equal(c.dirSyncs, 2, 'each write fsynced the directory');
      assert.equal(c.syncDirJobs, 0, 'inside its replace');
      assert.equal(fs.readFileSync(path.join(dir, 'a.json'), 'utf8'), 'two');
    });

    it('group-commits the directory fsync: ten writes arriving during one fsync share the next', async () => {
      let release!: () => void;
      const c = counted(steps!, new Promise<void>((r) => (release = r)));
      const writer = new AtomicWriter(c);
      const files = Array.from({ length: 10 }, (_, i) => path.join(dir, `${i}.json`));
      // The first write, alone in the directory, fsyncs it in its own job, held until the other nine
      // are renamed: they must wait for a second fsync.
      const writes = files.map((f, i) => writer.write(f, JSON.stringify({ i })));
      while (c.replaces < 9 || c.dirSyncs < 1) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setTimeout(r, 20));
      release();
      await Promise.all(writes);
      assert.equal(c.replaces, 10);
      assert.equal(c.dirSyncs, 2, "the first write's own, one shared by the nine writes that came during it");
      files.forEach((f, i) => assert.deepEqual(JSON.parse(fs.readFileSync(f, 'utf8')), { i }));
      assert.equal(writer.dirsInUse, 0, 'an idle directory is not kept');
    });

    it('fails only the write that failed among writes sharing a directory fsync', async () => {
      const c = counted(steps!);
      const writer = new AtomicWriter(c);
      // A rename over a non-empty directory fails (EISDIR or ENOTEMPTY).
      fs.mkdirSync(path.join(dir, 'bad.json'));
      fs.writeFileSync(path.join(dir, 'bad.json', 'x'), '');
      const names = ['0.json', '1.json', 'bad.json', '3.json', '4.json'];
      const results = await Promise.allSettled(names.map((n) => writer.write(path.join(dir, n), n)));
      results.forEach((r, i) => assert.equal(r.status, names[i] === 'bad.json' ? 'rejected' : 'fulfilled', names[i]));
      const err = (results[2] as PromiseRejectedResult).reason as NodeJS.ErrnoException;
      assert.match(String(err.code), /^(EISDIR|ENOTEMPTY)$/);
      assert.equal(err.syscall, 'rename');
      for (const n of names.filter((x) => x !== 'bad.json')) assert.equal(fs.readFileSync(path.join(dir, n), 'utf8'), n);
      assert.ok(fs.readdirSync(dir).every((n) => !n.includes('.tmp')), 'the failed write left no temp file');
      assert.ok(c.dirSyncs >= 1 && c.dirSyncs < 4, `${c.dirSyncs} directory fsyncs for four good writes`);
    });

    it("reports a missing directory as node's fs does (ENOENT, with syscall and path)", async () => {
      const writer = new AtomicWriter(steps!);
      const file = path.join(dir, 'missing', 'f.json');
      await assert.rejects(writer.write(file, 'x', { tmp: `${file}.tmp` }), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'ENOENT');
        assert.equal(err.syscall, 'open');
        assert.equal(err.path, `${file}.tmp`);
        return true;
      });
      await assert.rejects(writer.syncDir(path.join(dir, 'missing')), { code: 'ENOENT' });
      assert.equal(writer.dirsInUse, 0);
    });
  });
}

describe('atomic writes killed mid-way', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-writer-kill-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('leave every file whole, old or new, when the writer is SIGKILLed', async () => {
    // A child rewrites 20 records (about 16 KiB each, so a torn one would show) as fast as it can, 20 at a time.
    const module = path.resolve(__dirname, '..', '..', 'src', 'util', 'atomic_file.js');
    const script = `
      const { writeFileAtomic } = require(${JSON.stringify(module)});
      const path = require('node:path');
      const dir = ${JSON.stringify(dir)};
      const pad = 'x'.repeat(16384);
      (async () => {
        for (let gen = 0; ; gen++) {
          await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(path.join(dir, i + '.json'), JSON.stringify({ i, gen, pad }))));
          if (gen === 3) process.stdout.write('writing\\n');
        }
      })();`;
    await killMidWay(script);
    const gens = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const rec = JSON.parse(fs.readFileSync(path.join(dir, `${i}.json`), 'utf8')) as { i: number; gen: number; pad: string };
      assert.equal(rec.i, i);
      assert.equal(rec.pad.length, 16384);
      gens.add(rec.gen);
    }
    assert.ok(Math.min(...gens) >= 3, 'the files are past the generation that said it was writing');
  });
});
