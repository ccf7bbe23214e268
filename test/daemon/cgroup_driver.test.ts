// runtime.cgroup_driver is checked before berthd starts: a driver that cannot
// work on the host stops it with a message saying why.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { checkCgroupDriver, type DriverHost } from '../../src/cgroups/driver';
import { BerthError } from '../../src/errors';
import { BERTHD_MAIN } from '../helpers/berthd';
import { SystemdContainer } from '../helpers/nspawn';

const host = (over: Partial<DriverHost>): DriverHost => ({
  bootedWithSystemd: () => true,
  pid1Name: () => 'systemd',
  connectable: () => Promise.resolve(true),
  cgroupLayout: () => ({}),
  systemdVersion: () => Promise.resolve('252'),
  readOnlyHierarchies: () => [],
  ...over,
});

const refused = (re: RegExp) => (e: unknown) => e instanceof BerthError && e.kind === 'FAILED_PRECONDITION' && re.test(e.message);

describe('cgroup driver check at start', function () {
  this.timeout(30_000);

  it('accepts cgroupfs where a hierarchy is mounted, and says so when none is', async () => {
    await checkCgroupDriver('cgroupfs', host({}));
    await assert.rejects(
      checkCgroupDriver('cgroupfs', host({ cgroupLayout: () => { throw new Error('no cgroup hierarchy is mounted under /sys/fs/cgroup'); } })),
      refused(/^runtime\.cgroup_driver = "cgroupfs": no cgroup hierarchy is mounted under \/sys\/fs\/cgroup$/),
    );
  });

  it('refuses systemd without systemd as PID 1, naming PID 1', async () => {
    await assert.rejects(
      checkCgroupDriver('systemd', host({ bootedWithSystemd: () => false, pid1Name: () => 'tini' })),
      refused(/needs systemd as PID 1, and PID 1 here is "tini" \(\/run\/systemd\/system is missing\); set runtime\.cgroup_driver = "cgroupfs"/),
    );
  });

  it('refuses systemd when its D-Bus endpoints do not answer', async () => {
    const tried: string[] = [];
    await assert.rejects(
      checkCgroupDriver('systemd', host({ connectable: (s) => (tried.push(s), Promise.resolve(false)) })),
      refused(/systemd is PID 1 but its D-Bus endpoints \(\/run\/systemd\/private, \/run\/dbus\/system_bus_socket\) accept no connection/),
    );
    assert.deepEqual(tried, ['/run/systemd/private', '/run/dbus/system_bus_socket']);
  });

  it('refuses systemd when its D-Bus API does not answer, or its v1 hierarchies are read-only; accepts it otherwise', async () => {
    await assert.rejects(
      checkCgroupDriver('systemd', host({ systemdVersion: () => Promise.reject(new Error('no reply within 10000 ms')) })),
      refused(/systemd's D-Bus API does not answer: no reply within 10000 ms/),
    );
    await assert.rejects(
      checkCgroupDriver('systemd', host({ readOnlyHierarchies: () => ['/sys/fs/cgroup/memory'] })),
      refused(/the cgroup v1 hierarchies \/sys\/fs\/cgroup\/memory are read-only here/),
    );
    await checkCgroupDriver('systemd', host({}));
  });

  it('berthd with runtime.cgroup_driver = "systemd" exits 1 before touching anything, saying why', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-driver-'));
    try {
      const r = spawnSync(
        process.execPath,
        [BERTHD_MAIN, '--config', '/dev/null', '--socket', path.join(dir, 'b.sock'), '--root', path.join(dir, 'root'), '--state', path.join(dir, 'state'), '--no-metrics', '--set', 'runtime.cgroup_driver=systemd'],
        { encoding: 'utf8', timeout: 20_000 },
      );
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /berthd cannot start: runtime\.cgroup_driver = "systemd"/);
      assert.equal(fs.existsSync(path.join(dir, 'root')), false, 'nothing was created');
      assert.equal(fs.existsSync(path.join(dir, 'b.sock')), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('under a real systemd (PID 1 of an nspawn container)', () => {
    let c: SystemdContainer | undefined;
    before(async function () {
      if (!SystemdContainer.available()) this.skip(); // systemd-container is in deploy/install-deps.sh
      c = await SystemdContainer.start();
    });
    after(async () => {
      await c?.stop();
    });

    it('sees systemd as PID 1 answering over D-Bus, and refuses "systemd" while nspawn keeps the v1 hierarchies read-only', function () {
      // On a cgroup v2 host nspawn delegates a writable tree, and there is nothing to refuse (systemd_driver.test.ts runs pods there).
      if (detectCgroupLayout().version !== 1) this.skip();
      const r = c!.run(process.execPath, [BERTHD_MAIN, '--config', '/dev/null', '--root', '/tmp/b/root', '--state', '/tmp/b/state', '--socket', '/tmp/b/b.sock', '--no-metrics', '--set', 'runtime.cgroup_driver=systemd']);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /runtime\.cgroup_driver = "systemd": the cgroup v1 hierarchies .*\/sys\/fs\/cgroup\/memory.* are read-only here/);
    });
  });
});
