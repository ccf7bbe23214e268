// Cgroup files kept open between reads (src/cgroups/kept_files.ts), against
// a real cgroup: a kept descriptor reads the current figure, a cgroup made
// anew at the same path is read (not the old one's error), and forgetting
// a cgroup closes its descriptors.
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { KeptCgroupFiles } from '../../src/cgroups/kept_files';

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

describe('cgroups: files kept open between reads', () => {
  const layout = detectCgroupLayout();
  const memoryRoot = layout.hierarchies.find((h) => h.controllers.includes('memory'))?.mountpoint ?? '/sys/fs/cgroup';
  const v2 = layout.version === 2;
  const dir = path.join(memoryRoot, `berth-kept-${randomBytes(3).toString('hex')}`);
  const limitFile = path.join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes');
  const setLimit = (bytes: number) => fs.writeFileSync(limitFile, String(bytes));

  afterEach(() => {
    try {
      fs.rmdirSync(dir);
    } catch {
      // not there
    }
  });

  it('reads the current text through the kept descriptor, and the new cgroup once the old one is gone', () => {
    const kept = new KeptCgroupFiles();
    fs.mkdirSync(dir);
    setLimit(64 << 20);
    assert.equal(kept.read(dir, limitFile)?.trim(), String(64 << 20));
    setLimit(32 << 20);
    assert.equal(kept.read(dir, limitFile)?.trim(), String(32 << 20), 'a kept file is read afresh');
    assert.equal(kept.openFiles, 1);

    fs.rmdirSync(dir);
    assert.equal(kept.read(dir, limitFile), undefined, 'a removed cgroup reads as absent');
    fs.mkdirSync(dir);
    setLimit(16 << 20);
    assert.equal(kept.read(dir, limitFile)?.trim(), String(16 << 20), 'the cgroup made anew at the same path');
    kept.forget(dir);
  });

  it("closes a cgroup's descriptors when it is forgotten, or left out of retain()", () => {
    const kept = new KeptCgroupFiles();
    fs.mkdirSync(dir);
    const before = openFds();
    kept.read(dir, limitFile);
    kept.read(dir, path.join(dir, 'memory.stat'));
    assert.equal(openFds(), before + 2);
    kept.retain(new Set([dir]));
    assert.equal(openFds(), before + 2);
    kept.retain(new Set());
    assert.equal(openFds(), before);
    assert.equal(kept.openFiles, 0);
    kept.read(dir, limitFile);
    kept.forget(dir);
    assert.equal(openFds(), before);
  });

  it('reads an absent file as undefined and keeps nothing open for it', () => {
    const kept = new KeptCgroupFiles();
    assert.equal(kept.read(dir, path.join(dir, 'memory.stat')), undefined);
    assert.equal(kept.openFiles, 0);
  });
});
