// berth-pause is born in the pod cgroup of every hierarchy berth-pinns is
// given: cgroup v1 ones (joined through `tasks`, one thread) and a cgroup v2
// one (cloned into with CLONE_INTO_CGROUP), here the hybrid host's unified mount.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectCgroupLayout, PodCgroup, unifiedLayoutAt } from '../../src/cgroups/cgroups';
import { NamespacePinner } from '../../src/sandbox/namespaces/pinner';

const UNIFIED = '/sys/fs/cgroup/unified';

describe('berth-pinns cgroup joins', function () {
  this.timeout(20_000);
  const name = `/berth-pintest-${randomBytes(4).toString('hex')}`;
  const cgroups: PodCgroup[] = [];
  const dirs: string[] = [];
  let pausePid: number | undefined;

  afterEach(async () => {
    if (pausePid !== undefined) {
      try {
        process.kill(pausePid, 'SIGKILL');
      } catch {
        // gone
      }
      while (fs.existsSync(`/proc/${pausePid}`) && !/\) Z/.test(fs.readFileSync(`/proc/${pausePid}/stat`, 'utf8'))) {
        await new Promise((r) => setTimeout(r, 10));
      }
      pausePid = undefined;
    }
    for (const d of dirs.splice(0)) {
      await new NamespacePinner().unpin(d);
      fs.rmSync(path.dirname(d), { recursive: true, force: true });
    }
    for (const cg of cgroups.splice(0)) {
      await cg.remove(2000);
      for (const h of cg.layout.hierarchies) fs.rmdirSync(path.join(h.mountpoint, name));
    }
  });

  it('starts berth-pause inside the pod cgroup in every hierarchy, v1 and v2 alike', async function () {
    const layouts = [detectCgroupLayout()];
    if (layouts[0].version === 1 && fs.existsSync(path.join(UNIFIED, 'cgroup.procs'))) layouts.push(unifiedLayoutAt(UNIFIED));
    for (const layout of layouts) {
      const cg = new PodCgroup(layout, `${name}/pod1`);
      cg.create();
      cgroups.push(cg);
    }
    const nsDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pintest-')), 'ns');
    dirs.push(nsDir);
    const pinned = await new NamespacePinner().pin({
      nsDir,
      net: false,
      ipc: true,
      uts: false,
      pid: true,
      sysctls: {},
      cgroupProcs: cgroups.flatMap((cg) => cg.procsFiles()),
    });
    pausePid = pinned.pausePid;
    assert.ok(pausePid !== undefined);
    const lines = fs.readFileSync(`/proc/${pausePid}/cgroup`, 'utf8').trim().split('\n');
    const wanted = cgroups.flatMap((cg) => cg.layout.hierarchies.map((h) => ({ h, v2: cg.layout.version === 2 })));
    assert.ok(wanted.length > 0);
    for (const { h, v2 } of wanted) {
      // v2: the "0::" line; v1: the line naming one of the hierarchy's controllers.
      const controllers = (l: string): string[] => (l.split(':')[1] ?? '').split(',').map((c) => c.replace(/^name=/, ''));
      const line = v2 ? lines.find((l) => l.startsWith('0::')) : lines.find((l) => controllers(l).some((c) => h.controllers.map((x) => x.replace(/^name=/, '')).includes(c)));
      assert.ok(line, `no /proc/${pausePid}/cgroup line for ${h.mountpoint}: ${lines.join(' | ')}`);
      assert.equal(line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1), `${name}/pod1`, `${h.mountpoint}: ${line}`);
    }
  });
});
