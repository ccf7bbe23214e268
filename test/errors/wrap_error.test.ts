import * as assert from 'node:assert/strict';
import { BerthError, notFound, wrapError } from '../../src/errors';

describe('wrapError', () => {
  it('prefixes the message and keeps the kind of a BerthError, with it as the cause', () => {
    const inner = notFound('pod x not found');
    const e = wrapError('checking network "n"', inner);
    assert.ok(e instanceof BerthError);
    assert.equal(e.kind, 'NOT_FOUND');
    assert.equal(e.message, 'checking network "n": pod x not found');
    assert.equal(e.cause, inner);
  });

  it('makes anything else INTERNAL', () => {
    const inner = new Error('EIO');
    const e = wrapError('saving', inner);
    assert.equal(e.kind, 'INTERNAL');
    assert.equal(e.message, 'saving: EIO');
    assert.equal(e.cause, inner);
    assert.equal(wrapError('x', 'text').message, 'x: text');
  });
});
