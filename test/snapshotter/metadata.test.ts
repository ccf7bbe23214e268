// The snapshotter's metadata file: saves asked for while one is being written
// share the next write, and every save resolves only after a write that
// holds its change.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetadataStore } from '../../src/snapshotter/metadata';
import { writeFileAtomicKeepingOld } from '../../src/util/atomic_file';

describe('snapshotter: metadata saves', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-meta-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('shares one write among the saves asked for during another, each holding its change', async () => {
    const file = path.join(dir, 'metadata.json');
    const written: string[] = [];
    const store = new MetadataStore(file, async (f, data, tmp) => {
      await new Promise((r) => setTimeout(r, 20));
      await writeFileAtomicKeepingOld(f, data, tmp);
      written.push(data);
    });
    const saves: Array<Promise<void>> = [];
    for (let i = 0; i < 10; i++) {
      store.set(`k${i}`, { id: store.allocateId(), kind: 'active', created: new Date(0).toISOString() });
      const key = `k${i}`;
      // Resolved only once the file on disk has this key.
      saves.push(store.save().then(() => assert.ok(key in (JSON.parse(fs.readFileSync(file, 'utf8')) as { snapshots: object }).snapshots, key)));
    }
    await Promise.all(saves);
    assert.equal(written.length, 2, 'the first save, then one for the nine asked for while it was written');
    const again = new MetadataStore(file);
    await again.load();
    assert.equal(again.entries().length, 10);
  });

  it('fails every save that shared a failed write, and writes again for the next', async () => {
    const file = path.join(dir, 'metadata.json');
    let fail = true;
    const store = new MetadataStore(file, async (f, data, tmp) => {
      await new Promise((r) => setTimeout(r, 10));
      if (fail) throw new Error('disk full');
      await writeFileAtomicKeepingOld(f, data, tmp);
    });
    const results = await Promise.allSettled([store.save(), store.save(), store.save()]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
    fail = false;
    await store.save();
    assert.ok(fs.existsSync(file));
  });
});
