// The pieces of the systemd driver that need no systemd: the D-Bus wire
// format (checked against bytes from the specification's rules), slice and
// scope names as systemd and runc derive them, and limits as unit
// properties as runc converts them. The driver itself runs against a real
// systemd in test/daemon/systemd_driver.test.ts.
import * as assert from 'node:assert/strict';
import { parseMessage } from '../../src/cgroups/systemd/dbus_connection';
import { Variant, WireReader, WireWriter, DbusWireError } from '../../src/cgroups/systemd/dbus_wire';
import { cpuMask, expandSlice, limitProperties, parentSlice, scopeCgroupPath } from '../../src/cgroups/systemd/units';
import type { CgroupLayout } from '../../src/cgroups/cgroups';
import { BerthError } from '../../src/errors';

const V1: CgroupLayout = { version: 1, hierarchies: [] };
const V2: CgroupLayout = { version: 2, hierarchies: [{ mountpoint: '/sys/fs/cgroup', controllers: [] }] };

describe('systemd driver: D-Bus wire format', () => {
  it('writes StartTransientUnit arguments with the alignment the specification asks, and reads them back', () => {
    const w = new WireWriter();
    const props = [
      ['Slice', new Variant('s', 'a.slice')],
      ['PIDs', new Variant('au', [7, 8])],
      ['MemoryLimit', new Variant('t', 1n << 40n)],
      ['Delegate', new Variant('b', true)],
    ];
    w.values('ssa(sv)a(sa(sv))', ['x.scope', 'replace', props, []]);
    const buf = w.toBuffer();
    // "x.scope": length 7, bytes, NUL; then "replace" aligned to 4.
    assert.equal(buf.readUInt32LE(0), 7);
    assert.equal(buf.toString('utf8', 4, 11), 'x.scope');
    assert.equal(buf.readUInt32LE(12), 7);
    const back = new WireReader(buf, true).values('ssa(sv)a(sa(sv))');
    assert.deepEqual(back, ['x.scope', 'replace', props, []]);
  });

  it('reads a reply message of either byte order, and refuses truncated or overlong data', () => {
    const body = new WireWriter();
    body.values('o', ['/org/freedesktop/systemd1/job/42']);
    const w = new WireWriter();
    w.u8(0x6c);
    w.u8(2);
    w.u8(0);
    w.u8(1);
    w.u32(body.length);
    w.u32(9);
    w.value('a(yv)', [
      [5, new Variant('u', 3)],
      [8, new Variant('g', 'o')],
    ]);
    w.align(8);
    w.bytes(body.toBuffer());
    const m = parseMessage(w.toBuffer(), true);
    assert.equal(m.type, 2);
    assert.equal(m.replySerial, 3);
    assert.deepEqual(m.body, ['/org/freedesktop/systemd1/job/42']);
    assert.throws(() => parseMessage(w.toBuffer().subarray(0, w.length - 3), true), DbusWireError);
    // An array claiming more bytes than the message holds.
    const lying = Buffer.alloc(8);
    lying.writeUInt32LE(1000, 0);
    assert.throws(() => new WireReader(lying, true).value('ay'), /longer than its message/);
    const be = Buffer.from([0, 0, 0, 5]);
    assert.equal(new WireReader(be, false).value('u'), 5);
  });
});

describe('systemd driver: names and properties', () => {
  it('expands slice names as systemd and runc do, and refuses what is not one', () => {
    assert.equal(expandSlice('kubepods-burstable-pod1_2.slice'), '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice');
    assert.equal(expandSlice('-.slice'), '/');
    assert.equal(parentSlice('kubepods-burstable-podx.slice'), 'kubepods-burstable.slice');
    assert.equal(parentSlice('kubepods.slice'), '-.slice');
    for (const bad of ['/kubepods/burstable', 'a--b.slice', '-a.slice', 'a/b.slice', 'a.scope', `${'a'.repeat(300)}.slice`]) {
      assert.throws(() => expandSlice(bad), (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT', bad);
    }
    assert.equal(scopeCgroupPath('kubepods-podx.slice:berth:abc'), '/kubepods.slice/kubepods-podx.slice/berth-abc.scope');
    assert.equal(scopeCgroupPath(':berth:abc'), '/system.slice/berth-abc.scope');
  });

  it('converts limits to unit properties as runc does (v1 and v2)', () => {
    const props = (layout: CgroupLayout, l: Parameters<typeof limitProperties>[1]) =>
      Object.fromEntries(limitProperties(layout, l).map(([n, v]) => [n, v.value]));
    assert.deepEqual(props(V1, { cpuShares: 512, cpuPeriod: 100_000, cpuQuota: 50_000, memoryLimit: 1024 }), {
      CPUShares: 512n, CPUQuotaPeriodUSec: 100_000n, CPUQuotaPerSecUSec: 500_000n, MemoryLimit: 1024n,
    });
    // A quota of 1.5 % rounds up to whole percents (10 ms per second); -1 is no limit.
    assert.equal(props(V1, { cpuQuota: 1500 }).CPUQuotaPerSecUSec, 20_000n);
    assert.equal(props(V1, { cpuQuota: -1 }).CPUQuotaPerSecUSec, 0xffffffffffffffffn);
    assert.deepEqual(props(V2, { cpuShares: 1024, memoryLimit: 100, memorySwapLimit: 300, cpusetCpus: '0-1,9' }), {
      CPUWeight: 39n, MemoryMax: 100n, MemorySwapMax: 200n, AllowedCPUs: [0b11, 0b10],
    });
    assert.deepEqual([...cpuMask('0,3-4')], [0b11001]);
    assert.throws(() => cpuMask('3-1'), /bad range/);
  });
});
