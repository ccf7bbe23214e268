import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import { silentLogger } from '../../src/log/logger';
import { StreamingServer } from '../../src/streaming/server';
import { TokenCache } from '../../src/streaming/token_cache';
import { BerthError } from '../../src/errors';
import { exec } from '../../src/cri/exec';
import { attach } from '../../src/cri/attach';
import { portForward } from '../../src/cri/port_forward';
import { connectSpdy, connectWebSocket, execSpdy, isFailure, type HttpFailure } from '../helpers/stream_client';
import { localBackends } from '../helpers/local_backends';
import { runningWorkloads, testCriContext } from '../helpers/cri_context';

const execReq = { containerId: 'c1', cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false };

function plainGet(url: string, headers: Record<string, string> = {}): Promise<HttpFailure> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('upgrade', () => reject(new Error('unexpected upgrade')));
    req.on('error', reject);
    req.end();
  });
}

async function expectFailure(p: Promise<unknown>): Promise<HttpFailure> {
  const r = await p;
  if (!isFailure(r)) throw new Error('expected an HTTP error');
  return r;
}

describe('streaming: tokens, validation and protocol errors', function () {
  this.timeout(20000);
  let server: StreamingServer;

  before(async () => {
    server = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 1,
      backends: localBackends(),
      logger: silentLogger(),
    });
    await server.start();
  });
  after(() => server.stop());

  it('token cache: single use, expiry, bounded', () => {
    let now = 1000;
    const cache = new TokenCache<string>(60_000, () => now);
    const t = cache.insert('a');
    assert.equal(cache.consume(t), 'a');
    assert.equal(cache.consume(t), undefined);
    const t2 = cache.insert('b');
    now += 60_001;
    assert.equal(cache.consume(t2), undefined);
    for (let i = 0; i < 1000; i++) cache.insert('x');
    assert.throws(() => cache.insert('y'), (e: unknown) => e instanceof BerthError && e.kind === 'RESOURCE_EXHAUSTED');
    now += 60_001;
    cache.insert('z'); // expired ones are swept
    assert.equal(cache.size, 1);
  });

  it('unknown token: 404 with a text body', async () => {
    const r = await expectFailure(connectSpdy(`${server.url}/exec/nosuchtoken`, ['v4.channel.k8s.io']));
    assert.equal(r.status, 404);
    assert.match(r.body, /unknown, expired or already used/);
    assert.match(String(r.headers['content-type']), /text\/plain/);
    assert.equal((await plainGet(`${server.url}/nothing/here`)).status, 404);
  });

  it('reused token: 404', async () => {
    const url = server.getExecUrl(execReq);
    const c = await connectSpdy(url, ['v4.channel.k8s.io']);
    assert.ok(!isFailure(c));
    await execSpdy(c, {});
    const again = await expectFailure(connectSpdy(url, ['v4.channel.k8s.io']));
    assert.equal(again.status, 404);
  });

  it('expired token: 404', async () => {
    const url = server.getExecUrl(execReq);
    await new Promise((r) => setTimeout(r, 1100));
    const r = await expectFailure(connectWebSocket(url, ['v4.channel.k8s.io']));
    assert.equal(r.status, 404);
  });

  it('a token only works on its own path', async () => {
    const url = server.getExecUrl(execReq).replace('/exec/', '/attach/');
    assert.equal((await expectFailure(connectSpdy(url, ['v4.channel.k8s.io']))).status, 404);
  });

  it('no upgrade, or an unknown one: 400', async () => {
    const r = await plainGet(server.getExecUrl(execReq));
    assert.equal(r.status, 400);
    assert.match(r.body, /needs a connection upgrade to SPDY\/3.1 or websocket/);
    const r2 = await plainGet(server.getExecUrl(execReq), { Connection: 'Upgrade', Upgrade: 'h2c' });
    assert.equal(r2.status, 400);
    assert.match(r2.body, /unsupported protocol "h2c"/);
  });

  it('SPDY without a common protocol version: 403 listing what we accept; none at all: 400', async () => {
    const r = await expectFailure(connectSpdy(server.getExecUrl(execReq), ['v1.channel.k8s.io']));
    assert.equal(r.status, 403);
    assert.match(r.body, /unable to negotiate protocol/);
    assert.match(String(r.headers['x-accepted-stream-protocol-versions']), /v4\.channel\.k8s\.io/);
    const r2 = await expectFailure(connectSpdy(server.getExecUrl(execReq), []));
    assert.equal(r2.status, 400);
    assert.match(r2.body, /X-Stream-Protocol-Version is required/);
    const r3 = await expectFailure(
      connectSpdy(server.getPortForwardUrl({ podSandboxId: 'p', port: [] }), ['v4.channel.k8s.io']),
    );
    assert.equal(r3.status, 403);
  });

  it('WebSocket with an unsupported subprotocol: 403', async () => {
    const r = await expectFailure(connectWebSocket(server.getExecUrl(execReq), ['v9.channel.k8s.io']));
    assert.equal(r.status, 403);
    assert.match(r.body, /not supported/);
  });

  it('cuts a SPDY client that does not open its streams in time, and idle connections', async () => {
    const quick = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends: localBackends(),
      logger: silentLogger(),
      streamCreationTimeoutMs: 200,
      idleTimeoutMs: 300,
    });
    await quick.start();
    try {
      const c = await connectSpdy(quick.getExecUrl(execReq), ['v4.channel.k8s.io']);
      if (isFailure(c)) throw new Error(c.body);
      const closed = new Promise((r) => c.session.once('close', r));
      await c.session.openStream([['streamType', 'error']]);
      await closed; // stdout never came
      const pf = await connectSpdy(quick.getPortForwardUrl({ podSandboxId: 'p', port: [] }), ['portforward.k8s.io']);
      if (isFailure(pf)) throw new Error(pf.body);
      await new Promise((r) => pf.session.once('close', r)); // idle
      const deadline = Date.now() + 3000;
      while (quick.activeSessions > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(quick.activeSessions, 0);
    } finally {
      await quick.stop();
    }
  });

  it('CRI handlers validate like the kubelet and return URLs', async () => {
    const ctx = testCriContext({ streaming: server, ...runningWorkloads() });
    const invalid = (e: unknown): boolean => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT';
    await assert.rejects(exec(ctx, { ...execReq, containerId: '' }), invalid);
    await assert.rejects(exec(ctx, { ...execReq, cmd: [] }), invalid);
    await assert.rejects(exec(ctx, { ...execReq, stdout: false }), invalid);
    await assert.rejects(exec(ctx, { ...execReq, tty: true, stderr: true }), /tty and stderr cannot both be true/);
    assert.match((await exec(ctx, execReq)).url ?? '', /\/exec\//);
    const att = { containerId: 'c1', stdin: true, stdout: true, stderr: false, tty: true };
    assert.match((await attach(ctx, att)).url ?? '', /\/attach\//);
    await assert.rejects(attach(ctx, { ...att, containerId: '' }), invalid);
    await assert.rejects(attach(ctx, { ...att, stderr: true }), invalid);
    await assert.rejects(portForward(ctx, { podSandboxId: '', port: [] }), invalid);
    await assert.rejects(portForward(ctx, { podSandboxId: 'p', port: [70000] }), invalid);
    assert.match((await portForward(ctx, { podSandboxId: 'p', port: [80] })).url ?? '', /\/portforward\//);
    // As containerd: no URL for a container that does not run.
    const exited = testCriContext({ streaming: server, ...runningWorkloads('CONTAINER_EXITED') });
    await assert.rejects(exec(exited, execReq), (e: unknown) => e instanceof BerthError && e.kind === 'FAILED_PRECONDITION');
    await assert.rejects(attach(exited, att), /is not running/);
  });
});
