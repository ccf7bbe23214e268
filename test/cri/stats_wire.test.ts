// ListContainerStats entries written by hand (src/cri/stats_wire.ts) are the
// bytes the generic encoder (proto-loader) writes for the same figures, and
// decode to them: full figures, absent ones, zeros, uint64 values past 2^53.
import * as assert from 'node:assert/strict';
import type { ContainerRecord } from '../../src/container/record';
import type { ContainerStats } from '../../src/gen/runtime/v1/ContainerStats';
import { loadCri } from '../../src/proto';
import { containerStatsEntry } from '../../src/cri/stats_wire';

const method = () => loadCri().runtime.v1.RuntimeService.service.ListContainerStats;
const u64 = (value: string) => ({ value });

const attributes = {
  id: 'c'.repeat(64),
  metadata: { name: 'app', attempt: 3 },
  labels: { 'io.kubernetes.pod.name': 'web-0', tier: 'front' },
  annotations: { note: 'ünïcode ✓' },
};

const full: ContainerStats = {
  attributes,
  cpu: { timestamp: '1733390000123456789', usageCoreNanoSeconds: u64('123456789012'), usageNanoCores: u64('0') },
  memory: {
    timestamp: '1733390000123456789',
    workingSetBytes: u64('4096'),
    availableBytes: u64('18446744073709551615'),
    usageBytes: u64('9007199254740993'),
    rssBytes: u64('0'),
    pageFaults: u64('42'),
    majorPageFaults: u64('1'),
  },
  writableLayer: { timestamp: '1733390000000000000', fsId: { mountpoint: '/var/lib/berth/snapshots' }, usedBytes: u64('8192'), inodesUsed: u64('7') },
};

describe('cri: ListContainerStats entries written to the wire by hand', () => {
  const cases: Array<[string, ContainerStats]> = [
    ['every figure, values past 2^53 and zeros', full],
    ['no memory, no writable layer, no CPU rate yet', { attributes, cpu: { timestamp: '5', usageCoreNanoSeconds: u64('1'), usageNanoCores: null }, memory: null, writableLayer: null }],
    ['attributes alone', { attributes, cpu: null, memory: null, writableLayer: null }],
    ['an entry past 16 KiB (a three-byte length)', { ...full, attributes: { ...attributes, annotations: { big: 'x'.repeat(20000) } } }],
    ['no labels or annotations', { ...full, attributes: { id: 'd'.repeat(64), metadata: { name: 'x', attempt: 0 }, labels: {}, annotations: {} } }],
  ];
  for (const [what, stats] of cases) {
    it(`are the generic encoder's bytes: ${what}`, () => {
      const rec = {} as ContainerRecord;
      const generic = method().responseSerialize({ stats: [stats] });
      assert.deepEqual(containerStatsEntry(rec, stats), generic);
      assert.deepEqual(containerStatsEntry(rec, stats), generic, 'again, from the kept attributes');
    });
  }

  it('concatenated entries decode to the whole reply', () => {
    const a = { ...full };
    const b = { ...full, attributes: { ...attributes, id: 'e'.repeat(64) }, memory: null };
    const bytes = Buffer.concat([containerStatsEntry({} as ContainerRecord, a), containerStatsEntry({} as ContainerRecord, b)]);
    const decoded = method().responseDeserialize(bytes) as { stats: Array<{ attributes: { id: string }; memory: unknown; cpu: { usageCoreNanoSeconds: { value: string } } }> };
    assert.deepEqual(decoded.stats.map((s) => s.attributes.id), [attributes.id, 'e'.repeat(64)]);
    assert.equal(decoded.stats[1].memory, null);
    assert.equal(decoded.stats[0].cpu.usageCoreNanoSeconds.value, '123456789012');
  });
});
