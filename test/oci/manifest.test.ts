// src/oci/manifest.ts and chain_id.ts: manifests, indexes, image configs and chain IDs.
import * as assert from 'node:assert/strict';
import { BerthError } from '../../src/errors';
import { chainIds } from '../../src/oci/chain_id';
import { sha256Digest } from '../../src/oci/digest';
import { parseImageConfig, parseManifest } from '../../src/oci/manifest';
import { MediaType } from '../../src/oci/media_types';

const sha = sha256Digest;

describe('oci manifests', () => {
  it('refuses schema 1 and unknown documents', () => {
    assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":1}'), 'application/json'), (e: unknown) => e instanceof BerthError && /schema 1/.test(e.message));
    assert.throws(() => parseManifest(Buffer.from('nope'), ''), /not JSON/);
    assert.throws(() => parseManifest(Buffer.from('{"schemaVersion":2,"config":{"digest":"x","size":1},"layers":[]}'), ''), /valid sha256 digest/);
  });

  it('parses a manifest, taking the media type from the body over the content type', () => {
    const body = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: sha('c'), size: 2 },
      layers: [{ mediaType: MediaType.DockerLayerGzip, digest: sha('l'), size: 3, urls: ['https://x', 4] }],
    };
    const m = parseManifest(Buffer.from(JSON.stringify(body)), `${MediaType.OciManifest}; charset=utf-8`);
    assert.equal(m.kind, 'manifest');
    if (m.kind !== 'manifest') return;
    assert.equal(m.mediaType, MediaType.DockerManifest);
    assert.deepEqual(m.config, { mediaType: MediaType.DockerConfig, digest: sha('c'), size: 2 });
    assert.deepEqual(m.layers, [{ mediaType: MediaType.DockerLayerGzip, digest: sha('l'), size: 3, urls: ['https://x'] }]);
  });

  it('reads the diff IDs of an image config and refuses bad ones', () => {
    const good = { os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [sha('a')] } };
    const c = parseImageConfig(Buffer.from(JSON.stringify(good)), sha('cfg'));
    assert.deepEqual({ os: c.os, architecture: c.architecture, diffIds: c.diffIds }, { os: 'linux', architecture: 'amd64', diffIds: [sha('a')] });
    assert.throws(() => parseImageConfig(Buffer.from('{'), sha('cfg')), /is not JSON/);
    assert.throws(() => parseImageConfig(Buffer.from(JSON.stringify({ rootfs: { diff_ids: ['sha256:abc'] } })), sha('cfg')), /no valid rootfs\.diff_ids/);
    assert.throws(() => parseImageConfig(Buffer.from('{}'), sha('cfg')), (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT');
  });

  it('computes chain IDs as the OCI spec says', () => {
    const [a, b, c] = [sha('a'), sha('b'), sha('c')];
    const ab = sha(`${a} ${b}`);
    assert.deepEqual(chainIds([a, b, c]), [a, ab, sha(`${ab} ${c}`)]);
    assert.deepEqual(chainIds([]), []);
  });
});
