// ShimClient's error handling when there is no (working) shim.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { startsThroughShim } from '../../src/runtime/container_runtime';
import { ShimClient, readExitFile, shimBinaryPath } from '../../src/runtime/shim_client';
import { REPO, tempRoot } from './fixtures';

function kind(k: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof BerthError && err.kind === k;
}

describe('ShimClient without a shim', function () {
  let dir: string;
  beforeEach(() => (dir = tempRoot('berth-shimclient-')));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('resolves the binary from BERTH_SHIM or <repo>/build', function () {
    const saved = process.env.BERTH_SHIM;
    try {
      delete process.env.BERTH_SHIM;
      assert.equal(shimBinaryPath(), path.join(REPO, 'build', 'berth-shim'));
      process.env.BERTH_SHIM = '/opt/x/berth-shim';
      assert.equal(shimBinaryPath(), '/opt/x/berth-shim');
    } finally {
      if (saved === undefined) delete process.env.BERTH_SHIM;
      else process.env.BERTH_SHIM = saved;
    }
  });

  it('connect() to a directory without shim state is NOT_FOUND', async function () {
    await assert.rejects(ShimClient.connect(dir), kind('NOT_FOUND'));
  });

  it('a dead shim: state() falls back to the exit file, waitExit() reads it, isAlive() is false', async function () {
    fs.writeFileSync(path.join(dir, 'container.pid'), '4242');
    const shim = await ShimClient.connect(dir);
    assert.equal(shim.containerPid, 4242);
    assert.equal(await shim.isAlive(), false);
    await assert.rejects(shim.state(), kind('FAILED_PRECONDITION'));
    await assert.rejects(shim.waitExit(), kind('INTERNAL'));
    await assert.rejects(shim.reopenLog(), kind('FAILED_PRECONDITION'));
    const exit = '{"pid":4242,"exitCode":1,"signal":0,"exitedAtNs":"1795419840723614771","oomKilled":true}\n';
    fs.writeFileSync(path.join(dir, 'exit'), exit);
    assert.deepEqual(await shim.state(), {
      pid: 4242,
      status: 'exited',
      exit: { pid: 4242, exitCode: 1, signal: 0, exitedAtNs: '1795419840723614771', oomKilled: true },
    });
    assert.equal((await shim.waitExit()).exitedAtNs, '1795419840723614771');
  });

  it('rejects a malformed exit file as INTERNAL', async function () {
    fs.writeFileSync(path.join(dir, 'exit'), '{"exitCode":"x"}');
    await assert.rejects(readExitFile(dir), kind('INTERNAL'));
    assert.equal(await readExitFile(path.join(dir, 'missing')), null);
  });

  it('validates arguments before starting anything', async function () {
    const base = { id: 'x', bundle: dir, stateDir: path.join(dir, 's'), runtimeRoot: dir };
    await assert.rejects(ShimClient.spawn({ ...base, stdinOnce: true }), kind('INVALID_ARGUMENT'));
    await assert.rejects(ShimClient.spawn({ ...base, stateDir: path.join(dir, 'x'.repeat(120)) }), kind('INVALID_ARGUMENT'));
    await assert.rejects(ShimClient.spawn({ ...base, shimBinary: path.join(dir, 'nope') }), kind('FAILED_PRECONDITION'));
    fs.writeFileSync(path.join(dir, 'container.pid'), '1');
    const shim = await ShimClient.connect(dir);
    await assert.rejects(shim.resize(70000, 1), kind('INVALID_ARGUMENT'));
    await assert.rejects(shim.attach({}), kind('INVALID_ARGUMENT'));
  });
  it('START goes to the shim only for runc 1.0 and 1.1 (its exec fifo); other runtimes get `<runtime> start`', function () {
    assert.equal(startsThroughShim({ version: 'runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev' }), true);
    assert.equal(startsThroughShim({ version: 'crun version 1.8.1\ncommit: abc' }), false);
    assert.equal(startsThroughShim({ version: 'runc version 2.0.0' }), false);
    assert.equal(startsThroughShim({ version: 'runc version 1.2.0\ncommit: v1.2.0' }), false, 'runc 1.2 runs poststart hooks in runc start');
    assert.equal(startsThroughShim({}), false);
  });
});
