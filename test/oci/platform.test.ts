// src/oci/platform.ts: which index entry or image fits a platform.
import * as assert from 'node:assert/strict';
import { BerthError } from '../../src/errors';
import { digestOfHex } from '../../src/oci/digest';
import type { Descriptor, ImageIndex } from '../../src/oci/manifest';
import { formatPlatform, hostPlatform, runsOn, selectPlatform, type Platform } from '../../src/oci/platform';

function indexOf(platforms: Array<Platform | undefined>): ImageIndex {
  const manifests: Descriptor[] = platforms.map((platform, i) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: digestOfHex(String(i).repeat(64).slice(0, 64)),
    size: 1,
    ...(platform ? { platform } : {}),
  }));
  return { kind: 'index', mediaType: 'application/vnd.oci.image.index.v1+json', manifests };
}

describe('oci platforms', () => {
  it('describes this host as linux with an OCI architecture name', () => {
    const host = hostPlatform();
    assert.equal(host.os, 'linux');
    assert.notEqual(host.architecture, 'x64');
    if (process.arch === 'x64') assert.deepEqual(host, { os: 'linux', architecture: 'amd64' });
    if (process.arch === 'arm64') assert.deepEqual(host, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  it('formats only the parts that are set', () => {
    assert.equal(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), 'linux/arm64/v8');
    assert.equal(formatPlatform({ os: 'linux', architecture: 'amd64' }), 'linux/amd64');
    assert.equal(formatPlatform({}), '');
  });

  it('runs an image on the same os and architecture; empty parts match anything', () => {
    const amd64: Platform = { os: 'linux', architecture: 'amd64' };
    assert.equal(runsOn({ os: 'linux', architecture: 'amd64' }, amd64), true);
    assert.equal(runsOn({ os: 'linux', architecture: 'arm64' }, amd64), false);
    assert.equal(runsOn({ os: 'windows', architecture: 'amd64' }, amd64), false);
    assert.equal(runsOn({ os: '', architecture: '' }, amd64), true);
    assert.equal(runsOn({}, amd64), true);
  });

  it('picks the exact entry of an index, tolerating a missing arm64 variant', () => {
    const index = indexOf([
      { os: 'linux', architecture: 'arm', variant: 'v7' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
      { os: 'linux', architecture: 'amd64' },
      { os: 'unknown', architecture: 'unknown' },
    ]);
    const digest = (i: number) => index.manifests[i].digest;
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'amd64' }).digest, digest(2));
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest, digest(1));
    assert.equal(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }).digest, digest(0));

    const noVariant = indexOf([undefined, { os: 'linux', architecture: 'arm64' }]);
    assert.equal(selectPlatform(noVariant, { os: 'linux', architecture: 'arm64', variant: 'v8' }).digest, noVariant.manifests[1].digest);
  });

  it('does not take an amd64 entry of another variant, and says what the index has', () => {
    const index = indexOf([{ os: 'linux', architecture: 'amd64', variant: 'v3' }, undefined]);
    assert.throws(
      () => selectPlatform(index, { os: 'linux', architecture: 'amd64' }),
      (e: unknown) => e instanceof BerthError && e.kind === 'NOT_FOUND' && /platform linux\/amd64 .*it has: linux\/amd64\/v3, \?/.test(e.message),
    );
    assert.throws(
      () => selectPlatform(indexOf([]), { os: 'linux', architecture: 's390x' }),
      (e: unknown) => e instanceof BerthError && /linux\/s390x.*it has: nothing/.test(e.message),
    );
  });
});
