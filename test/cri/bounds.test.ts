// The request bounds name the field over its bound by its wire path, arrays included.
import { strict as assert } from 'node:assert';
import { BerthError } from '../../src/errors';
import { checkRequestBounds } from '../../src/cri/bounds';

describe('request bounds', () => {
  it('names a field inside an array by its path, and passes requests within bounds', () => {
    const ok = { config: { mounts: [{ hostPath: '/a', containerPath: '/b' }] }, podSandboxId: 'a'.repeat(64) };
    checkRequestBounds('CreateContainer', ok);
    const long = { config: { mounts: [{ hostPath: '/a' }, { hostPath: `/${'x'.repeat(5000)}` }] } };
    assert.throws(
      () => checkRequestBounds('CreateContainer', long),
      (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT' && /CreateContainer: config\.mounts\[1\]\.host_path is 5001 bytes long/.test(e.message),
    );
    assert.throws(() => checkRequestBounds('ListContainers', { filter: { id: 'f'.repeat(65) } }), /filter\.id is 65 bytes/);
  });
});
