// Pod cgroups on the real cgroupfs: layout detection, create/remove in every
// hierarchy (v1 here, and v2 on the hybrid host's unified mount), stats.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectCgroupLayout, PodCgroup, unifiedLayoutAt, validateCgroupPath } from '../../src/cgroups/cgroups';

const HYBRID_MOUNTINFO = `\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const UNIFIED_MOUNTINFO = `\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`;

function rmdirQuiet(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // already gone
  }
}

describe('pod cgroups', function () {
  this.timeout(20_000);
  const name = `/berth-cgtest-${randomBytes(4).toString('hex')}`;

  it('detects v1/hybrid hierarchies and unified v2 from mountinfo', () => {
    const hybrid = detectCgroupLayout('/sys/fs/cgroup', HYBRID_MOUNTINFO);
    assert.equal(hybrid.version, 1);
    assert.deepEqual(
      hybrid.hierarchies.map((h) => [h.mountpoint, h.controllers]),
      [
        ['/sys/fs/cgroup/cpu,cpuacct', ['cpu', 'cpuacct']],
        ['/sys/fs/cgroup/memory', ['memory']],
        ['/sys/fs/cgroup/systemd', ['name=systemd']],
      ],
    );
    assert.equal(hybrid.version === 1 && hybrid.hybridUnified, '/sys/fs/cgroup/unified', 'the hybrid cgroup2 mount is known, for cleanup');
    const unified = detectCgroupLayout('/sys/fs/cgroup', UNIFIED_MOUNTINFO);
    assert.equal(unified.version, 2);
    assert.throws(() => detectCgroupLayout('/sys/fs/cgroup', '27 1 254:0 / / rw - ext4 /dev/vda rw\n'), /no cgroup hierarchy/);
  });

  it('validates cgroupfs paths', () => {
    assert.equal(validateCgroupPath('/kubepods//burstable/pod1/'), '/kubepods/burstable/pod1');
    assert.throws(() => validateCgroupPath('kubepods-burstable.slice'), /cgroupfs/);
    assert.throws(() => validateCgroupPath('/kubepods/../x'), /not a valid/);
    assert.throws(() => validateCgroupPath('/'), /not a valid/);
    assert.throws(() => validateCgroupPath(`/berth/${'x'.repeat(256)}`), /longer than 255 bytes/);
  });

  it('removing a cgroup that could never be made (name too long, or absent) succeeds: a rollback must finish', async () => {
    await new PodCgroup(detectCgroupLayout(), `${name}/pod${'u'.repeat(300)}`).remove();
    await new PodCgroup(detectCgroupLayout(), `${name}/never-made`).remove();
  });

  it('creates the pod cgroup in every host hierarchy, reads stats, and removes it (tolerating already gone)', async () => {
    const layout = detectCgroupLayout();
    const cg = new PodCgroup(layout, `${name}/kubepods/pod1`);
    try {
      assert.equal(cg.create(), true);
      assert.equal(cg.create(), false, 'second create reports it existed');
      for (const d of cg.dirs()) assert.ok(fs.statSync(d).isDirectory(), d);
      const cpuset = layout.hierarchies.find((h) => h.controllers.includes('cpuset'));
      if (cpuset) {
        const cpus = fs.readFileSync(path.join(cpuset.mountpoint, name, 'kubepods/pod1', 'cpuset.cpus'), 'utf8').trim();
        assert.notEqual(cpus, '', 'cpuset.cpus left empty: no task could join');
      }
      // A process in the cgroup: stats count it, and removal says who is still there.
      const child = spawn('sh', ['-c', 'read x; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
      for (const f of cg.procsFiles()) fs.writeFileSync(f, String(child.pid));
      child.stdin!.write('go\n');
      await new Promise((r) => setTimeout(r, 300));
      const stats = cg.stats();
      assert.ok(BigInt(stats.cpuUsageNs ?? '0') > 0n, `cpu ${stats.cpuUsageNs}`);
      assert.ok(BigInt(stats.memoryUsageBytes ?? '0') > 0n, `memory ${stats.memoryUsageBytes}`);
      assert.ok(BigInt(stats.memoryWorkingSetBytes ?? '0') <= BigInt(stats.memoryUsageBytes ?? '0'));
      await assert.rejects(cg.remove(100), new RegExp(`processes still in it: ${child.pid}`));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      await cg.remove();
      for (const d of cg.dirs()) assert.equal(fs.existsSync(d), false);
      await cg.remove(); // already gone
    } finally {
      for (const h of layout.hierarchies) {
        for (const d of ['kubepods/pod1', 'kubepods', '']) rmdirQuiet(path.join(h.mountpoint, name, d));
      }
    }
  });

  it('creates and removes a pod cgroup in a v2 tree, delegating controllers down the path', async function () {
    const mount = '/sys/fs/cgroup/unified';
    if (!fs.existsSync(path.join(mount, 'cgroup.controllers'))) this.skip();
    const rootSubtree = fs.readFileSync(path.join(mount, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/).filter(Boolean);
    const layout = unifiedLayoutAt(mount);
    const cg = new PodCgroup(layout, `${name}/pod2`);
    try {
      assert.equal(cg.create(), true);
      const dir = path.join(mount, name, 'pod2');
      assert.ok(fs.statSync(dir).isDirectory());
      const available = fs.readFileSync(path.join(mount, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
      const delegated = fs.readFileSync(path.join(mount, name, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
      assert.deepEqual(delegated.sort(), available.sort(), 'controllers not delegated to the pod parent');
      const stats = cg.stats();
      assert.match(stats.cpuUsageNs ?? '', /^\d+$/);
      await cg.remove();
      assert.equal(fs.existsSync(dir), false);
    } finally {
      rmdirQuiet(path.join(mount, name, 'pod2'));
      rmdirQuiet(path.join(mount, name));
      const now = fs.readFileSync(path.join(mount, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/).filter(Boolean);
      const added = now.filter((c) => !rootSubtree.includes(c));
      if (added.length) fs.writeFileSync(path.join(mount, 'cgroup.subtree_control'), added.map((c) => `-${c}`).join(' '));
    }
  });
});
