// Pod limits: resources + overhead, and the files written for v1 and v2
// (v2 against a directory standing in for the unified hierarchy).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyWrites, limitWrites, sharesToWeight } from '../../src/cgroups/limits';
import { podLimits } from '../../src/sandbox/resources';
import { resources } from '../runtime/fixtures';

describe('sandbox: pod limits for UpdatePodSandboxResources', () => {
  it('adds the overhead to the limits the resources set, and leaves unset ones alone', () => {
    const l = podLimits(
      resources({ memoryLimitInBytes: '1000', cpuShares: '100', cpuQuota: '20000', cpuPeriod: '100000', cpusetCpus: '0' }),
      resources({ memoryLimitInBytes: '24', cpuShares: '2', cpuQuota: '500', cpuPeriod: '50000' }),
    );
    assert.deepEqual(l, { memoryLimit: 1024, cpuShares: 102, cpuPeriod: 100000, cpuQuota: 21000, cpusetCpus: '0' });
    assert.deepEqual(podLimits(resources({}), resources({ memoryLimitInBytes: '24', cpuQuota: '500' })), {});
    assert.deepEqual(podLimits(resources({ cpuQuota: '-1' }), null), { cpuQuota: -1 });
  });

  it('refuses negative values and unified keys that are not interface file names', () => {
    assert.throws(() => podLimits(resources({ cpuShares: '-1' }), null), /cpu_shares/);
    assert.throws(() => podLimits(resources({ unified: { '../memory.max': '1' } }), null), /not a cgroup interface file/);
    assert.throws(() => podLimits(resources({ hugepageLimits: [{ pageSize: '../x', limit: '1' }] }), null), /hugepage size/);
  });

  it('writes v2 files with runc\'s conversions', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cg2-'));
    try {
      const dir = path.join(root, 'berth', 'podx');
      fs.mkdirSync(dir, { recursive: true });
      const layout = { version: 2 as const, hierarchies: [{ mountpoint: root, controllers: ['cpu', 'memory'] }] as [{ mountpoint: string; controllers: string[] }] };
      const writes = limitWrites(layout, '/berth/podx', {
        cpuShares: 1024,
        cpuPeriod: 100000,
        cpuQuota: 50000,
        memoryLimit: 1 << 20,
        memorySwapLimit: 3 << 20,
        unified: { 'pids.max': '100' },
      });
      assert.deepEqual(applyWrites(writes), []);
      const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
      assert.equal(read('cpu.weight'), String(sharesToWeight(1024)));
      assert.equal(read('cpu.weight'), '39');
      assert.equal(read('cpu.max'), '50000 100000');
      assert.equal(read('memory.max'), String(1 << 20));
      assert.equal(read('memory.swap.max'), String(2 << 20));
      assert.equal(read('pids.max'), '100');
      const unlimited = limitWrites(layout, '/berth/podx', { cpuQuota: -1 });
      assert.deepEqual(unlimited.map((w) => w.value), ['max']);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('reports each write that failed, having made the others', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cg2-'));
    try {
      const failed = applyWrites([
        { file: path.join(root, 'memory.max'), value: '1' },
        { file: path.join(root, 'missing', 'cpu.max'), value: 'max' },
      ]);
      assert.equal(failed.length, 1);
      assert.match(failed[0].write.file, /missing/);
      assert.equal(fs.readFileSync(path.join(root, 'memory.max'), 'utf8'), '1');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
