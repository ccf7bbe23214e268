import * as assert from 'node:assert/strict';
import { BerthError } from '../../src/errors';
import { formatReference, normalizeReference, parseReference } from '../../src/oci/reference';

const D = 'sha256:' + 'ab'.repeat(32);

describe('image references', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['user/app:v1.2_3-x', 'docker.io/user/app:v1.2_3-x'],
    ['quay.io/org/app', 'quay.io/org/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:tag', 'localhost:5000/a/b/c:tag'],
    ['127.0.0.1:5000/app', '127.0.0.1:5000/app:latest'],
    ['[::1]:5000/app:1', '[::1]:5000/app:1'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`quay.io/x/y:1.0@${D}`, `quay.io/x/y@${D}`],
    ['registry.example.com:443/a__b/c-d--e.f', 'registry.example.com:443/a__b/c-d--e.f:latest'],
  ];
  for (const [input, want] of cases) {
    it(`normalises ${input}`, () => assert.equal(normalizeReference(input), want));
  }

  it('refuses registry hosts no URL can name (INVALID_ARGUMENT, not an internal "Invalid URL")', () => {
    for (const [ref, why] of [['localhost:99999/app', /port 99999/], ['[1:2]/app', /not a valid registry host/]] as const) {
      assert.throws(() => parseReference(ref), (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT' && why.test(err.message));
    }
    assert.equal(normalizeReference('localhost:65535/app'), 'localhost:65535/app:latest');
  });

  it('splits the parts', () => {
    assert.deepEqual(parseReference('localhost:5000/x/y:2'), { domain: 'localhost:5000', path: 'x/y', tag: '2' });
    assert.deepEqual(parseReference(`x@${D}`), { domain: 'docker.io', path: 'library/x', digest: D });
    assert.equal(formatReference({ domain: 'h:1', path: 'p' }), 'h:1/p:latest');
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['docker.io/Library/x', /lowercase/],
    ['busybox:', /not a valid tag/],
    ['busybox:-x', /not a valid tag/],
    ['busybox@sha256:abc', /not a (sha256 )?digest/],
    ['busybox@md5:' + 'a'.repeat(32), /not supported/],
    ['a//b', /not a valid repository path component/],
    ['a/b_', /not a valid repository path component/],
    ['bad host!/x', /whitespace|not a valid/],
    [' busybox', /whitespace/],
    ['localhost:5000/', /empty/],
    ['ab'.repeat(32), /image ID/],
    ['x/' + 'a'.repeat(260), /longer than 255/],
  ];
  for (const [input, why] of bad) {
    it(`refuses ${JSON.stringify(input.slice(0, 40))}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT' && why.test(err.message),
      );
    });
  }
});
