// `runc features` parsing, used to decide whether "rro" mounts can be requested.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { parseFeatures, resolveBinary, supportsRecursiveReadOnly } from '../../src/runtime/handlers';

describe('runtime/handlers features', () => {
  it('parses features JSON and finds rro', () => {
    const f = parseFeatures(JSON.stringify({ ociVersionMax: '1.1.0', mountOptions: ['ro', 'rro'], linux: { namespaces: ['pid'] } }));
    assert.deepEqual(f, { ociVersionMax: '1.1.0', mountOptions: ['ro', 'rro'], namespaces: ['pid'], idmapMounts: false });
    assert.equal(supportsRecursiveReadOnly({ features: f }), true);
    assert.equal(supportsRecursiveReadOnly({ features: { ociVersionMax: '', mountOptions: ['ro'], namespaces: [], idmapMounts: false } }), false);
    assert.equal(supportsRecursiveReadOnly({}), false);
  });

  it('finds whether the runtime idmaps mounts itself (linux.mountExtensions.idmap.enabled, runc >= 1.2)', () => {
    const on = parseFeatures(JSON.stringify({ linux: { mountExtensions: { idmap: { enabled: true } } } }));
    assert.equal(on?.idmapMounts, true);
    assert.equal(parseFeatures(JSON.stringify({ linux: { mountExtensions: { idmap: { enabled: false } } } }))?.idmapMounts, false);
  });

  it('Debian\'s runc 1.1.5 does not idmap mounts itself', function () {
    const runc = resolveBinary('runc');
    if (!runc) this.skip();
    assert.equal(parseFeatures(execFileSync(runc as string, ['features'], { encoding: 'utf8' }))?.idmapMounts, false);
  });

  it('returns undefined for output that is not JSON', () => {
    assert.equal(parseFeatures('Incorrect Usage: no such command'), undefined);
  });

  it('reads the real runc features', function () {
    const runc = resolveBinary('runc');
    if (!runc) this.skip();
    const f = parseFeatures(execFileSync(runc as string, ['features'], { encoding: 'utf8' }));
    assert.ok(f && f.mountOptions.includes('rbind') && f.namespaces.includes('network'));
  });
});
