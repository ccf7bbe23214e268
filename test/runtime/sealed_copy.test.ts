// runc exec'd from berth-launch's sealed memfd copy of its binary
// (src/launch/runtime_copy.c): which runtimes get it, and `runc create` run by
// berth-shim from it. runc 1.1's `runc init` runs from the copy itself instead
// of a clone of its own, so a created container's init (waiting for start)
// shows the copy as its /proc/PID/exe. The exec path is tested in
// oci_runtime.test.ts, the protocol in test/util/launch.test.ts.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { findHelper } from '../../src/runtime/handlers';
import { runsFromSealedCopy } from '../../src/runtime/sealed_copy';
import { ShimClient, shimBinaryPath } from '../../src/runtime/shim_client';
import { ShimSpares } from '../../src/runtime/shim_spare';
import { useLauncher } from '../../src/util/launch';
import { buildShim, ContainerDirs, makeBundle, makeRootfs, RUNC, tempRoot, waitingSpares } from '../shim/fixtures';

describe('runtime/sealed_copy: runc from a sealed copy of its binary', function () {
  this.timeout(60_000);
  let root: string;
  let rootfs: string;
  const made: ContainerDirs[] = [];

  before(function () {
    if (process.getuid?.() !== 0 || !fs.existsSync(RUNC)) this.skip();
    buildShim();
    root = tempRoot('berth-sealed-copy-');
    rootfs = makeRootfs(root);
  });
  after(() => {
    useLauncher(undefined);
    for (const c of made) c.cleanup();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('is for runc 1.x only', () => {
    assert.equal(runsFromSealedCopy({ version: 'runc version 1.1.5+ds1' }), true);
    assert.equal(runsFromSealedCopy({ version: 'runc version 1.2.0' }), true);
    assert.equal(runsFromSealedCopy({ version: 'crun version 1.8.1' }), false);
    assert.equal(runsFromSealedCopy({ version: 'runc version 2.0.0' }), false);
    assert.equal(runsFromSealedCopy({}), false);
  });

  /** The exe of the init of a container berth-shim created (not started: still runc init). */
  async function createdInitExe(sealedCopy: boolean, spares?: ShimSpares): Promise<string> {
    return (await createdInit(sealedCopy, spares)).exe;
  }

  async function createdInit(sealedCopy: boolean, spares?: ShimSpares): Promise<{ exe: string; shimPid: number }> {
    const c = ContainerDirs.create(root);
    made.push(c);
    c.bundle = makeBundle(c.dir, rootfs, { args: ['true'] });
    const shim = await ShimClient.spawn({ id: c.id, bundle: c.bundle, stateDir: c.stateDir, runtimeRoot: c.runtimeRoot, runtime: RUNC, sealedCopy, spares });
    // The shim lets go of the copy once runc is started: held, a replaced runc's copy would stay in memory.
    const shimFds = fs.readdirSync(`/proc/${shim.shimPid}/fd`).map((fd) => {
      try {
        return fs.readlinkSync(`/proc/${shim.shimPid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.equal(shimFds.filter((l) => l.startsWith('/memfd:')).length, 0, shimFds.join(' '));
    return { exe: fs.readlinkSync(`/proc/${shim.containerPid}/exe`), shimPid: shim.shimPid ?? 0 };
  }

  it("berth-shim runs `runc create` from it through berth-launch; by path otherwise, and runc clones itself", async () => {
    const version = execFileSync(RUNC, ['--version'], { encoding: 'utf8' });
    assert.ok(runsFromSealedCopy({ version }), `this test needs runc 1.x: ${version}`);
    useLauncher(findHelper('berth-launch', 'BERTH_LAUNCH'));
    assert.match(await createdInitExe(true), /^\/memfd:berth-runtime/);
    assert.doesNotMatch(await createdInitExe(false), /^\/memfd:berth-runtime/, 'not asked for');
    useLauncher(undefined);
    assert.doesNotMatch(await createdInitExe(true), /^\/memfd:berth-runtime/, 'no berth-launch: no copy');
  });

  it('a spare shim started ahead of need holds the copy it was started with, and runs `runc create` from it', async () => {
    useLauncher(findHelper('berth-launch', 'BERTH_LAUNCH'));
    const spares = new ShimSpares();
    try {
      const shimBinary = shimBinaryPath();
      const before = new Set(waitingSpares());
      await spares.prepare(shimBinary, RUNC);
      const [spare] = waitingSpares().filter((p) => !before.has(p));
      const fromSpare = await createdInit(true, spares);
      assert.equal(fromSpare.shimPid, spare, 'the waiting spare became the shim');
      assert.match(fromSpare.exe, /^\/memfd:berth-runtime/, 'from a spare with the copy');
      // Asked without the copy, no spare matches (one is started for the next such create): started directly, by path.
      assert.doesNotMatch(await createdInitExe(false, spares), /^\/memfd:berth-runtime/, 'not asked for');
      await spares.prepare(shimBinary, '');
      assert.doesNotMatch(await createdInitExe(false, spares), /^\/memfd:berth-runtime/, 'a spare without the copy');
    } finally {
      spares.close();
      useLauncher(undefined);
    }
  });
});
