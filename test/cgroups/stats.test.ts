// Cgroup usage figures from the files of a v1 (hybrid) and a v2 tree laid
// out in a temp dir exactly as the kernel lays them out, PSI parsing, and
// /proc/net/dev parsing. The real-container checks are in test/container/stats.test.ts.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parsePressure, PodCgroup, type CgroupLayout } from '../../src/cgroups/cgroups';
import { UsageSampler } from '../../src/cgroups/usage';
import { parseNetDev } from '../../src/network/netdev';

function write(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
}

const PRESSURE = 'some avg10=0.00 avg60=0.00 avg300=0.00 total=1500\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=700\n';

describe('cgroup usage figures', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cgstats-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('v1 (hybrid): cpuacct, memory.stat totals, limit, page faults, pids, and PSI from the unified mirror', () => {
    const cg = '/kubepods/pod1';
    write(path.join(dir, 'cpuacct', cg), { 'cpuacct.usage': '123456789\n' });
    write(path.join(dir, 'memory', cg), {
      'memory.usage_in_bytes': '10000000\n',
      'memory.limit_in_bytes': '16000000\n',
      'memory.stat': 'cache 1\nrss 2\ntotal_rss 6000000\ntotal_mapped_file 100\ntotal_inactive_file 3000000\ntotal_pgfault 42\ntotal_pgmajfault 3\n',
    });
    write(path.join(dir, 'pids', cg), { 'pids.current': '7\n' });
    write(path.join(dir, 'unified', cg), { 'cpu.pressure': 'some avg10=0.00 avg60=0.00 avg300=0.00 total=99\n', 'memory.pressure': PRESSURE });
    const layout: CgroupLayout = {
      version: 1,
      hierarchies: ['cpuacct', 'memory', 'pids'].map((c) => ({ mountpoint: path.join(dir, c), controllers: [c] })),
      hybridUnified: path.join(dir, 'unified'),
    };
    const s = new PodCgroup(layout, cg).stats();
    assert.equal(s.cpuUsageNs, '123456789');
    assert.equal(s.memoryUsageBytes, '10000000');
    assert.equal(s.memoryWorkingSetBytes, '7000000', 'usage minus total_inactive_file');
    assert.equal(s.memoryAvailableBytes, '9000000', 'limit minus working set');
    assert.equal(s.memoryRssBytes, '6000000');
    assert.equal(s.pageFaults, '42');
    assert.equal(s.majorPageFaults, '3');
    assert.equal(s.processCount, '7');
    assert.deepEqual(s.psi, { cpu: { someUsec: '99' }, memory: { someUsec: '1500', fullUsec: '700' } });
    assert.match(s.timestampNs, /^\d{19}$/);
    // A container's CRI stats: the same CPU and memory figures, neither pids nor PSI (not read at all).
    fs.rmSync(path.join(dir, 'pids'), { recursive: true });
    const c = new PodCgroup(layout, cg).stats('cpuMemory');
    assert.deepEqual({ ...c, timestampNs: '' }, { ...s, timestampNs: '', processCount: undefined, psi: undefined });
    fs.mkdirSync(path.join(dir, 'pids', cg), { recursive: true });
    fs.writeFileSync(path.join(dir, 'pids', cg, 'pids.current'), '7\n');

    // No limit (the kernel's "unlimited" figure) and no PSI: neither is reported.
    fs.writeFileSync(path.join(dir, 'memory', cg, 'memory.limit_in_bytes'), '9223372036854771712\n');
    fs.rmSync(path.join(dir, 'unified'), { recursive: true });
    const t = new PodCgroup(layout, cg).stats();
    assert.equal(t.memoryAvailableBytes, undefined);
    assert.equal(t.psi, undefined);
  });

  it('v2: cpu.stat, memory.current/max/stat, pids.current and *.pressure; "max" is no limit', () => {
    const cg = '/kubepods/pod2';
    write(path.join(dir, cg), {
      'cpu.stat': 'usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n',
      'memory.current': '8192000\n',
      'memory.max': 'max\n',
      'memory.stat': 'anon 4096000\nfile 4096000\nfile_mapped 0\ninactive_file 1024000\npgfault 11\npgmajfault 1\n',
      'pids.current': '2\n',
      'cpu.pressure': PRESSURE,
      'memory.pressure': PRESSURE,
      'io.pressure': PRESSURE,
    });
    const layout: CgroupLayout = { version: 2, hierarchies: [{ mountpoint: dir, controllers: ['cpu', 'memory', 'pids'] }] };
    const s = new PodCgroup(layout, cg).stats();
    assert.equal(s.cpuUsageNs, '2500000');
    assert.equal(s.memoryWorkingSetBytes, '7168000');
    assert.equal(s.memoryAvailableBytes, undefined);
    assert.equal(s.memoryRssBytes, '4096000');
    assert.equal(s.pageFaults, '11');
    assert.equal(s.majorPageFaults, '1');
    assert.equal(s.processCount, '2');
    assert.deepEqual(Object.keys(s.psi ?? {}), ['cpu', 'memory', 'io']);
    const c = new PodCgroup(layout, cg).stats('cpuMemory');
    assert.equal(c.cpuUsageNs, '2500000');
    assert.equal(c.memoryWorkingSetBytes, '7168000');
    assert.equal(c.processCount, undefined);
    assert.equal(c.psi, undefined);
    fs.writeFileSync(path.join(dir, cg, 'memory.max'), '9216000\n');
    assert.equal(new PodCgroup(layout, cg).stats().memoryAvailableBytes, '2048000');
  });

  it('the CPU rate is the usage between the last two samples', async () => {
    const cg = '/p';
    write(path.join(dir, cg), { 'cpu.stat': 'usage_usec 1000\n' });
    const sampler = new UsageSampler(() => ({ version: 2, hierarchies: [{ mountpoint: dir, controllers: [] }] }));
    const a = sampler.sample(cg);
    assert.equal(a.cpuNanoCores, undefined, 'a rate needs two samples');
    await new Promise((r) => setTimeout(r, 20));
    fs.writeFileSync(path.join(dir, cg, 'cpu.stat'), 'usage_usec 51000\n'); // 50 ms of CPU since
    const b = sampler.sample(cg);
    // 50 ms of CPU over the interval between the two samples' timestamps, in nanocores.
    const expected = (50_000_000n * 1_000_000_000n) / (BigInt(b.timestampNs) - BigInt(a.timestampNs));
    assert.equal(b.cpuNanoCores, expected.toString());
  });

  it('the sampler keeps one PodCgroup (its joined file paths) per cgroup until it is forgotten, and reads the files anew each time', () => {
    write(path.join(dir, 'a'), { 'cpu.stat': 'usage_usec 1\n', 'memory.current': '100\n' });
    write(path.join(dir, 'b'), { 'cpu.stat': 'usage_usec 2\n' });
    const sampler = new UsageSampler(() => ({ version: 2, hierarchies: [{ mountpoint: dir, controllers: [] }] }), 'cpuMemory');
    assert.equal(sampler.sample('/a').memoryUsageBytes, '100');
    sampler.sample('/b');
    assert.equal(sampler.cpuUsage('/a'), '1000');
    assert.equal(sampler.keptCgroups, 2);
    fs.writeFileSync(path.join(dir, 'a', 'memory.current'), '200\n');
    assert.equal(sampler.sample('/a').memoryUsageBytes, '200', 'the same PodCgroup reads the file again');
    sampler.forget('/a');
    assert.equal(sampler.keptCgroups, 1);
    sampler.sample('/a');
    sampler.retain(new Set(['/a']));
    assert.equal(sampler.keptCgroups, 1, 'retain drops the others');
    assert.equal(sampler.sample('/a').memoryUsageBytes, '200');
  });

  it('parses pressure files and /proc/net/dev', () => {
    assert.deepEqual(parsePressure(PRESSURE), { someUsec: '1500', fullUsec: '700' });
    assert.equal(parsePressure(''), undefined);
    const netdev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:   5000      40    2    1    0     0          0         0     3000      30    4    3    0     0       0          0
  net1:      7       1    0    0    0     0          0         0        8       1    0    0    0     0       0          0
`;
    const ifs = parseNetDev(netdev);
    assert.deepEqual(
      ifs.map((i) => [i.name, i.rxBytes, i.rxErrors, i.rxPackets, i.rxDropped, i.txBytes, i.txErrors, i.txPackets, i.txDropped]),
      [
        ['eth0', '5000', '2', '40', '1', '3000', '4', '30', '3'],
        ['net1', '7', '0', '1', '0', '8', '0', '1', '0'],
      ],
    );
  });
});
