// Freed memory goes back to the kernel once berthd is quiet: the native trim
// releases malloc's, V8's low-memory collection its own, QuietTrimmer runs
// them once work has stopped, and the CRI server counts every call's start
// and end as work.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriClient } from '../../src/client/cri_client';
import { defaultConfig } from '../../src/config/config';
import { CriServer } from '../../src/cri/server';
import { BERTHD_QUIET_MS, QuietTrimmer } from '../../src/util/malloc_trim';
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

  it("releaseFreeMemory shrinks V8's young generation back and compacts the old one, and collects again only once the heap has grown", () => {
    // A child with berthd's node flags and a young generation free to grow (a later
    // --max-semi-space-size wins), so a burst grows it; --trace-gc shows each collection's reason.
    const trimModule = path.resolve(__dirname, '..', '..', 'src', 'util', 'malloc_trim.js');
    const script = `
      const v8 = require('node:v8');
      const space = (name) => v8.getHeapSpaceStatistics().find((s) => s.space_name === name).space_size;
      const initialNew = space('new_space');
      // A burst: short-lived objects, a few generations of them alive at once (the young generation grows),
      // and many promoted then mostly dropped (the old generation's pages end partly empty).
      let recent = [];
      for (let r = 0; r < 200; r++) {
        recent.push(Array.from({ length: 20000 }, (_, i) => ({ i, s: 'x' + i })));
        if (recent.length > 5) recent.shift();
      }
      const kept = recent.flat().filter((_, i) => i % 20 === 0);
      recent = null;
      const before = { young: space('new_space'), old: space('old_space') };
      const { releaseFreeMemory } = require(${JSON.stringify(trimModule)});
      releaseFreeMemory();
      const after = { young: space('new_space'), old: space('old_space') };
      console.log('--- second call');
      releaseFreeMemory();
      console.log('--- after growth');
      const more = Array.from({ length: 100000 }, (_, i) => ({ i, s: 'y' + i }));
      releaseFreeMemory();
      console.log(JSON.stringify({ initialNew, before, after, kept: kept.length + more.length }));`;
    const out = execFileSync(process.execPath, [...berthdNodeFlags(), '--max-semi-space-size=16', '--trace-gc', '-e', script], { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    const r = JSON.parse(lines[lines.length - 1]) as { initialNew: number; before: { young: number; old: number }; after: { young: number; old: number } };
    const lowMemoryCollections = (from: number, to: number): number => lines.slice(from, to).filter((l) => l.includes('low memory notification')).length;
    const second = lines.indexOf('--- second call');
    const growth = lines.indexOf('--- after growth');
    assert.ok(r.before.young >= 4 * r.initialNew, `the burst grew the young generation: ${r.initialNew} -> ${r.before.young} bytes`);
    assert.equal(r.after.young, r.initialNew, 'the young generation is back to its initial size');
    assert.ok(r.after.old < r.before.old / 2, `old space ${r.before.old} -> ${r.after.old} bytes`);
    assert.ok(lowMemoryCollections(0, second) >= 1, 'the first call collects');
    assert.equal(lowMemoryCollections(second, growth), 0, 'a second call with the heap as it was only trims');
    assert.ok(lowMemoryCollections(growth, lines.length) >= 1, 'a call after the heap has grown collects again');
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

  it("berthd's trimmer never fires under a kubelet's relist (a call a second after the last one ended), and once it stops", async () => {
    let trims = 0;
    const trimmer = new QuietTrimmer(BERTHD_QUIET_MS, () => trims++);
    try {
      // Five relists as the server sees them: activity at a call's start and end, the next a second after.
      for (let i = 0; i < 5; i++) {
        trimmer.activity();
        await sleep(5);
        trimmer.activity();
        await sleep(1000);
      }
      assert.equal(trims, 0, 'no trim between relists');
      await sleep(BERTHD_QUIET_MS);
      assert.equal(trims, 1, 'one once the relists stop');
    } finally {
      trimmer.close();
    }
  });

  it('QuietTrimmer does not trim when a call was waiting unread behind a stall of the event loop', async () => {
    let trims = 0;
    const trimmer = new QuietTrimmer(200, () => trims++);
    const server = net.createServer((sock) => sock.on('data', () => trimmer.activity()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    try {
      await new Promise<void>((resolve) => client.once('connect', resolve));
      await sleep(50); // the server side is set up
      trimmer.activity();
      // A call arrives while the process is stalled past the quiet time: its bytes wait in the socket.
      client.write('call');
      const until = performance.now() + 400;
      while (performance.now() < until) {
        // stalled
      }
      await sleep(100);
      assert.equal(trims, 0, 'the waiting call counts before the trim runs');
      await sleep(400);
      assert.equal(trims, 1, 'once quiet after it');
    } finally {
      client.destroy();
      server.close();
      trimmer.close();
    }
  });

  it('the CRI server counts the start and the end of every call as work', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-trim-'));
    let activities = 0;
    const server = new CriServer(testCriContext({ config: defaultConfig() }), undefined, undefined, undefined, { activity: () => activities++ });
    const sock = path.join(dir, 's.sock');
    await server.bind(sock);
    const client = new CriClient(sock);
    try {
      await client.runtime.Version({ version: '' });
      await assert.rejects(client.runtime.CheckpointContainer({ containerId: '' }));
      assert.equal(activities, 4);
    } finally {
      client.close();
      await server.shutdown(1000);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
