// The one mount-table parser: every field of a mountinfo line, escapes
// decoded, malformed lines skipped; and the queries built on it.
import * as assert from 'node:assert/strict';
import { escapeMountPath, mountOf, mountsUnder, parseMountInfo, readMountInfoSync } from '../../src/util/mountinfo';

const TABLE = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '40 22 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid master:7 - cgroup cgroup rw,cpu,cpuacct',
  '91 22 0:52 / /var/lib/b\\040c/m\\134n rw,relatime - overlay overlay rw,lowerdir=1/fs:2/fs,upperdir=/x/3/fs,workdir=/x/3/work',
  '92 91 0:4 net:[4026532281] /var/lib/b\\040c/m\\134n/ns/net rw - nsfs nsfs rw',
  'garbage line without the separator',
  '',
].join('\n');

describe('util/mountinfo', () => {
  it('parses every field, with octal escapes decoded', () => {
    const t = parseMountInfo(TABLE);
    assert.equal(t.length, 4);
    assert.deepEqual(t[0], { root: '/', mountPoint: '/', optional: ['shared:1'], fsType: 'ext4', source: '/dev/vda', superOptions: 'rw' });
    assert.deepEqual(t[1].optional, ['master:7']);
    assert.equal(t[1].superOptions, 'rw,cpu,cpuacct');
    assert.equal(t[2].mountPoint, '/var/lib/b c/m\\n');
    assert.equal(t[2].fsType, 'overlay');
    assert.equal(t[3].root, 'net:[4026532281]');
  });

  it('escapes a path as the kernel prints it', () => {
    assert.equal(escapeMountPath('/var/lib/b c/m\\n'), '/var/lib/b\\040c/m\\134n');
  });

  it('finds the mounts under a directory and the mount holding a path', () => {
    const t = parseMountInfo(TABLE);
    assert.deepEqual(mountsUnder('/var/lib/b c/m\\n', t).map((m) => m.fsType), ['overlay', 'nsfs']);
    assert.equal(mountsUnder('/var/lib/b c', t).length, 2);
    assert.deepEqual(mountsUnder('/var/lib/b', t), [], 'a prefix of a name is not a parent');
    assert.equal(mountOf('/var/lib/b c/m\\n/etc', t)?.fsType, 'overlay');
    assert.equal(mountOf('/etc/hosts', t)?.fsType, 'ext4');
  });

  it('reads this process\'s table, / included', () => {
    assert.ok(readMountInfoSync().some((m) => m.mountPoint === '/'));
  });
});
