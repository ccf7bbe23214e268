// src/oci/digest.ts: the one digest pattern and its helpers.
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BerthError } from '../../src/errors';
import { digestOfHex, digestProblem, hexOf, isHexPrefix, isSha256Digest, isSha256Hex, sha256Digest, stripAlgorithm } from '../../src/oci/digest';

const HEX = 'ab'.repeat(32);

describe('oci digests', () => {
  it('recognises sha256 digests and bare hex ids, lowercase only', () => {
    assert.equal(isSha256Digest(`sha256:${HEX}`), true);
    assert.equal(isSha256Digest(`sha256:${HEX.toUpperCase()}`), false);
    assert.equal(isSha256Digest(`sha256:${HEX}0`), false);
    assert.equal(isSha256Digest(`sha512:${HEX}`), false);
    assert.equal(isSha256Digest(HEX), false);
    assert.equal(isSha256Hex(HEX), true);
    assert.equal(isSha256Hex(`sha256:${HEX}`), false);
    assert.equal(isSha256Hex(HEX.slice(1)), false);
  });

  it('accepts 1 to 64 hex digits as an id prefix', () => {
    assert.equal(isHexPrefix('a'), true);
    assert.equal(isHexPrefix(HEX), true);
    assert.equal(isHexPrefix(`${HEX}a`), false);
    assert.equal(isHexPrefix(''), false);
    assert.equal(isHexPrefix('xyz'), false);
  });

  it('says why a string is not a usable digest', () => {
    assert.equal(digestProblem(`sha256:${HEX}`), undefined);
    assert.match(digestProblem('sha256:abc') ?? '', /is not a digest/);
    assert.match(digestProblem(`md5:${'a'.repeat(32)}`) ?? '', /algorithm "md5" is not supported/);
    assert.match(digestProblem(`sha256:${'A'.repeat(64)}`) ?? '', /not a sha256 digest/);
  });

  it('computes, builds and takes apart digests', () => {
    const want = `sha256:${createHash('sha256').update('hello').digest('hex')}`;
    assert.equal(sha256Digest('hello'), want);
    assert.equal(sha256Digest(Buffer.from('hello')), want);
    assert.equal(digestOfHex(HEX), `sha256:${HEX}`);
    assert.equal(hexOf(`sha256:${HEX}`), HEX);
    assert.equal(stripAlgorithm(`sha256:${HEX}`), HEX);
    assert.equal(stripAlgorithm('abc'), 'abc');
  });

  it('refuses to take the hex of a non-digest, as INVALID_ARGUMENT', () => {
    assert.throws(
      () => hexOf('../../etc/passwd'),
      (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT' && /not a sha256 digest/.test(e.message),
    );
  });
});
