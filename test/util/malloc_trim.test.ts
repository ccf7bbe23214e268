// Freed memory goes back to the kernel once berthd is quiet: the native trim
// releases malloc's, a compacting collection V8's, QuietTrimmer runs them once
// work has stopped, and the CRI server counts every call's end as work.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriClient } from '../../src/client/cri_client';
import { defaultConfig } from '../../src/config/config';
import { CriServer } from '../../src/cri/server';
import { QuietTrimmer } from '../../src/util/malloc_trim';
import { berthdNodeFlags } from '../helpers/berthd';
import { testCriContext } from '../helpers/cri_context';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('malloc trim', () => {
  it('releases the free memory inside the main malloc heap (resident [heap] shrinks)', () => {
    // A child with gc exposed: 16 MiB of 64 KiB buffers (malloc'd in the main heap, under the mmap
    // threshold), one kept above the rest so glibc cannot shrink the heap from the top, the rest freed.
    const trimModule = path.resolve(__dirname, '..', '..', 'src', 'util', 'malloc_trim.js');
    const script = `
      const fs = require('node:fs');
      const heapKb = () => Number(/\\[heap\\]\\n(?:.*\\n)*?Rss:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/smaps', 'utf8'))[1]);
      let bufs = Array.from({ length: 256 }, () => Buffer.alloc(64 * 1024, 1));
      const keep = Buffer.alloc(64 * 1024, 2);
      bufs = null; gc(); gc();
      const before = heapKb();
      const released = require(${JSON.stringify(trimModule)}).trimMalloc();
      process.stdout.write(JSON.stringify({ before, after: heapKb(), released, kept: keep.length }));`;
    const r = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: String(128 * 1024) } })) as {
      before: number;
      after: number;
      released: boolean;
    };
    assert.equal(r.released, true);
    assert.ok(r.before - r.after >= 8 * 1024, `[heap] resident ${r.before} KiB -> ${r.after} KiB`);
  });

  it('releaseFreeMemory compacts the old generation (node-flags: --expose-gc --compact-on-every-full-gc), and collects again only once the heap has grown', () => {
    const trimModule = path.resolve(__dirname, '..', '..', 'src', 'util', 'malloc_trim.js');
    const script = `
      const v8 = require('node:v8');
      const oldSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_size;
      let all = [];
      for (let i = 0; i < 200000; i++) all.push({ i, s: 'x' + i });
      const kept = all.filter((_, i) => i % 20 === 0);
      all = null;
      const realGc = globalThis.gc;
      let collections = 0;
      globalThis.gc = () => { collections++; realGc(); };
      const before = oldSpace();
      const { releaseFreeMemory } = require(${JSON.stringify(trimModule)});
      releaseFreeMemory();
      const after = oldSpace();
      releaseFreeMemory();
      const once = collections;
      let more = [];
      for (let i = 0; i < 100000; i++) more.push({ i, s: 'y' + i });
      releaseFreeMemory();
      process.stdout.write(JSON.stringify({ before, after, once, collections, kept: kept.length + more.length }));`;
    const flags = berthdNodeFlags().filter((f) => f === '--expose-gc' || f === '--compact-on-every-full-gc');
    assert.equal(flags.length, 2, 'deploy/node-flags exposes gc and compacts on full collections');
    const r = JSON.parse(execFileSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' })) as { before: number; after: number; once: number; collections: number };
    assert.equal(r.once, 1, 'one collection; a second call with the heap as it was only trims');
    assert.equal(r.collections, 2, 'a call after the heap has grown collects again');
    assert.ok(r.after < r.before / 2, `old space ${r.before} -> ${r.after} bytes`);
  });

  it('QuietTrimmer trims once work has stopped for its quiet time, not while it goes on, and never without work', async () => {
    // Generous margins: a call every 20 ms against a quiet time of 400 ms.
    let trims = 0;
    const idle = new QuietTrimmer(400, () => trims++);
    await sleep(900);
    assert.equal(trims, 0, 'no work, no trim');
    const busy = new QuietTrimmer(400, () => trims++);
    for (let i = 0; i < 40; i++) {
      busy.activity();
      await sleep(20);
    }
    assert.equal(trims, 0, 'not while calls keep coming');
    await sleep(900);
    assert.equal(trims, 1, 'once after the quiet time');
    await sleep(900);
    assert.equal(trims, 1, 'and only once');
    idle.close();
    busy.close();
  });

  it('the CRI server counts the end of every call as work', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-trim-'));
    let ended = 0;
    const server = new CriServer(testCriContext({ config: defaultConfig() }), undefined, undefined, undefined, { activity: () => ended++ });
    const sock = path.join(dir, 's.sock');
    await server.bind(sock);
    const client = new CriClient(sock);
    try {
      await client.runtime.Version({ version: '' });
      await assert.rejects(client.runtime.CheckpointContainer({ containerId: '' }));
      assert.equal(ended, 2);
    } finally {
      client.close();
      await server.shutdown(1000);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
