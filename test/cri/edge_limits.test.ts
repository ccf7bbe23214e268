// The edge's limits without a daemon: status messages are capped and cleaned
// in the one place statuses are made, and request fields are bounded by name.
import { strict as assert } from 'node:assert';
import { checkRequestBounds } from '../../src/cri/bounds';
import { clipText, MAX_STATUS_MESSAGE_BYTES, toServiceError } from '../../src/cri/status_map';
import { invalidArgument, notFound } from '../../src/errors';

describe('CRI edge limits', () => {
  it('caps every status message on a character boundary and says so', () => {
    for (const err of [notFound(`container ${'é'.repeat(30_000)} not found`), new Error('x'.repeat(100_000))]) {
      const se = toServiceError(err);
      assert.ok(Buffer.byteLength(se.details) <= MAX_STATUS_MESSAGE_BYTES, `${Buffer.byteLength(se.details)} bytes`);
      assert.doesNotMatch(se.details, /\uFFFD/, 'a character was split');
      assert.match(se.details, /\.\.\. \(cut from \d+ bytes\)$/);
    }
    assert.equal(toServiceError(invalidArgument('short')).details, 'short');
  });

  it('replaces control characters other than tab and newline', () => {
    assert.equal(clipText('a\u0000b\u001b[31mc\td\ne\u0085', 100), 'a b [31mc\td\ne ');
  });

  it('bounds ids, metadata, references and paths wherever they appear', () => {
    const ok = { containerId: 'a'.repeat(64), config: { metadata: { name: 'n'.repeat(253), namespace: 'ns', uid: 'u'.repeat(128) } } };
    checkRequestBounds('X', ok);
    assert.throws(() => checkRequestBounds('ListContainers', { filter: { id: 'f'.repeat(65) } }), /ListContainers: filter\.id is 65 bytes/);
    assert.throws(
      () => checkRequestBounds('CreateContainer', { config: { mounts: [{ hostPath: '/'.repeat(4097) }] } }),
      /config\.mounts\[0\]\.host_path is 4097 bytes/,
    );
    assert.throws(() => checkRequestBounds('RunPodSandbox', { config: { metadata: { namespace: 'n'.repeat(64) } } }), /metadata\.namespace/);
    // A field bounded under one parent is free elsewhere (a KeyValue's value, a label).
    checkRequestBounds('X', { config: { labels: { name: 'v'.repeat(10_000) }, envs: [{ key: 'id', value: 'v'.repeat(10_000) }] } });
  });
});
