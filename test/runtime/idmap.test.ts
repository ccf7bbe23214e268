// The pieces of user namespace support that need no kernel: the handler
// check a userns pod passes, id arithmetic, path searchability, and the spec
// left to a runtime that idmaps mounts itself.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { idmapBindMounts, releaseIdmapMounts } from '../../src/container/idmap_mounts';
import { BerthError } from '../../src/errors';
import type { RuntimeHandler } from '../../src/runtime/handlers';
import { ensureTraversable, hostIdOf, IdmapHelper, mapArg } from '../../src/runtime/idmap';
import type { OciSpec } from '../../src/runtime/spec/oci_types';
import { checkUsernsSupport } from '../../src/sandbox/run';

const handler = (userNamespaces?: RuntimeHandler['userNamespaces']): RuntimeHandler => ({
  name: 'runc', binary: '/usr/sbin/runc', root: '/run/x', tmpDir: '/run/x/tmp', ok: true, problem: '', version: '', userNamespaces,
});

describe('runtime/idmap and the user namespace checks', () => {
  it('a userns pod needs a handler whose probe ran one; on the host network, that too', () => {
    const kind = (fn: () => void): string => {
      try {
        fn();
        return 'ok';
      } catch (err) {
        return err instanceof BerthError ? `${err.kind}: ${err.message}` : String(err);
      }
    };
    assert.equal(kind(() => checkUsernsSupport(handler({ ok: true, problem: '', hostNetwork: true, hostNetworkProblem: '' }), true)), 'ok');
    assert.match(kind(() => checkUsernsSupport(handler({ ok: false, problem: 'no idmap', hostNetwork: false, hostNetworkProblem: 'x' }), false)), /^FAILED_PRECONDITION: .*cannot run pods in user namespaces on this host: no idmap/);
    assert.match(kind(() => checkUsernsSupport(handler(undefined), false)), /^FAILED_PRECONDITION: .*not probed/);
    assert.match(kind(() => checkUsernsSupport(handler({ ok: true, problem: '', hostNetwork: false, hostNetworkProblem: 'sysfs' }), true)), /^INVALID_ARGUMENT: .*on the host network on this host: sysfs/);
    assert.equal(kind(() => checkUsernsSupport(handler({ ok: true, problem: '', hostNetwork: false, hostNetworkProblem: 'sysfs' }), false)), 'ok');
  });

  it('a container without an idmap directory (no user namespace) has nothing to detach: the helper is not asked', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-idmap-'));
    try {
      const asked: string[][] = [];
      const helper = { umount: async (paths: readonly string[]) => void asked.push([...paths]) } as unknown as IdmapHelper;
      await releaseIdmapMounts(helper, path.join(tmp, 'idmap'));
      assert.deepEqual(asked, []);
      // With the directory (nothing mounted in it) the mount table is read and the helper asked with nothing.
      fs.mkdirSync(path.join(tmp, 'idmap'));
      await releaseIdmapMounts(helper, path.join(tmp, 'idmap'));
      assert.deepEqual(asked, [[]]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('maps ids and formats the helper argument', () => {
    const maps = [{ containerId: 0, hostId: 1000, length: 10 }];
    assert.equal(hostIdOf(maps, 0), 1000);
    assert.equal(hostIdOf(maps, 9), 1009);
    assert.equal(hostIdOf(maps, 10), undefined);
    assert.equal(mapArg(maps), '0:1000:10');
    assert.throws(() => mapArg([]));
  });

  it('makes berth\'s own directories searchable by others and names a parent that is not', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-trav-'));
    try {
      const deep = path.join(tmp, 'state', 'a', 'b');
      fs.mkdirSync(deep, { recursive: true, mode: 0o700 });
      fs.chmodSync(tmp, 0o700);
      await assert.rejects(ensureTraversable(deep, path.join(tmp, 'state')), /is not searchable by others \(mode 700\)/);
      await ensureTraversable(deep, tmp);
      for (const d of [tmp, path.join(tmp, 'state'), path.join(tmp, 'state', 'a'), deep]) assert.equal(fs.statSync(d).mode & 0o777, 0o711, d);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a runtime that idmaps mounts itself gets the pod\'s maps on each bind mount; /sys and non-binds are left alone', async () => {
    const spec = {
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind'] },
        { destination: '/v', type: 'bind', source: '/tmp', options: ['rbind'] },
        { destination: '/w', type: 'bind', source: '/tmp', options: ['rbind'], uidMappings: [{ containerID: 0, hostID: 7, size: 1 }], gidMappings: [{ containerID: 0, hostID: 7, size: 1 }] },
      ],
    } as unknown as OciSpec;
    const userns = { path: '/nonexistent/user', uids: [{ containerId: 0, hostId: 1000, length: 5 }], gids: [{ containerId: 0, hostId: 2000, length: 5 }] };
    const made = await idmapBindMounts(spec, new IdmapHelper('/nonexistent/berth-pinns'), '/nonexistent/idmap', userns, true);
    assert.deepEqual(made, []);
    assert.deepEqual(spec.mounts[2].uidMappings, [{ containerID: 0, hostID: 1000, size: 5 }]);
    assert.deepEqual(spec.mounts[2].gidMappings, [{ containerID: 0, hostID: 2000, size: 5 }]);
    assert.deepEqual(spec.mounts[3].uidMappings, [{ containerID: 0, hostID: 7, size: 1 }]);
    assert.equal(spec.mounts[1].uidMappings, undefined);
    assert.equal(spec.mounts[0].uidMappings, undefined);
  });
});
