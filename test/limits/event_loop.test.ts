// berthd's event loop is never held by work proportional to hostile input:
// while it pulls images built to be expensive (MiBs of PAX global headers,
// 10^5 directories, a config just under its cap), Version keeps answering
// within a stall bound, and berthd's memory stays within a stated bound.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { TestBerthd } from '../helpers/berthd';
import { layerFromTar, Pusher, TestRegistry } from '../helpers/registry';
import { extendedHeader, paxRecords, tarEntry } from '../helpers/tar_writer';

/** A Version round trip slower than this is a stall (generous: the machine is shared and loaded). */
const STALL_MS = 1000;
/** berthd may grow by this much over its idle RSS while pulling (the layers stream; nothing is held whole). */
const RSS_GROWTH_BYTES = 256 * 1024 * 1024;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const end = Buffer.alloc(1024);

/** 6 PAX global headers of ~1 MiB, ~45k records each, then 3000 files. */
function paxGlobalsTar(): Buffer {
  const parts: Buffer[] = [];
  for (let h = 0; h < 6; h++) {
    const recs: Array<[string, string]> = [];
    for (let i = 0; i < 45_000; i++) recs.push([`comment.${h}.${i}`, 'y']);
    parts.push(extendedHeader('g', paxRecords(recs)));
  }
  for (let i = 0; i < 3000; i++) parts.push(tarEntry({ name: `f${i}`, body: 'x' }));
  return Buffer.concat([...parts, end]);
}

/** 60k directories: each is created, then finished (owner, mode, times) at the end of the layer. */
function manyDirsTar(): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    parts.push(tarEntry({ name: `d${i}/`, type: 'dir' }));
    for (let j = 0; j < 1000; j++) parts.push(tarEntry({ name: `d${i}/${j}/`, type: 'dir' }));
  }
  return Buffer.concat([...parts, end]);
}

describe('limits: hostile pulls never stall berthd', function () {
  this.timeout(300_000);
  let registry: TestRegistry;
  let d: TestBerthd;

  before(async () => {
    registry = await TestRegistry.start();
    const pusher = new Pusher(registry.host);
    await pusher.pushImage('hostile/pax', 'v1', { layers: [layerFromTar(paxGlobalsTar())] });
    await pusher.pushImage('hostile/dirs', 'v1', { layers: [layerFromTar(manyDirsTar())] });
    await pusher.pushImage('hostile/config', 'v1', {
      layers: [layerFromTar(Buffer.concat([tarEntry({ name: 'a', body: 'a' }), end]))],
      // Just under the 4 MiB cap: read whole and parsed, as it may be.
      config: { Env: ['PATH=/bin'], Labels: Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => [`k${i}`, 'v'.repeat(100)])) },
    });
    d = await TestBerthd.start();
  });
  after(async () => {
    await d?.cleanup();
    await registry?.stop();
  });

  it(`answers Version within ${STALL_MS} ms and grows by less than ${RSS_GROWTH_BYTES >> 20} MiB while pulling hostile images`, async () => {
    const pid = d.proc?.pid as number;
    const baseline = rssOf(pid);
    let maxLatency = 0;
    let maxRss = baseline;
    let pulling = true;
    const probe = (async () => {
      while (pulling) {
        const t0 = performance.now();
        await d.cri.runtime.Version({ version: 'v1' });
        maxLatency = Math.max(maxLatency, performance.now() - t0);
        maxRss = Math.max(maxRss, rssOf(pid));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const started = Date.now();
    try {
      for (const name of ['hostile/pax', 'hostile/dirs', 'hostile/config']) {
        await d.cri.image.PullImage({ image: { image: `${registry.host}/${name}:v1` } });
      }
    } finally {
      pulling = false;
      await probe;
    }
    const summary = `max Version latency ${Math.round(maxLatency)} ms, RSS ${baseline >> 20} -> max ${maxRss >> 20} MiB, pulls took ${Date.now() - started} ms`;
    console.log(`      ${summary}`);
    assert.ok(maxLatency < STALL_MS, summary);
    assert.ok(maxRss - baseline < RSS_GROWTH_BYTES, summary);
  });
});
