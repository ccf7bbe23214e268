import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { containerConfig, podConfig, startContainerFixture, type ContainerFixture } from './fixture';
import { collect, connectSpdy, connectWebSocket, execSpdy, execWebSocket, isFailure, openPortForward } from '../helpers/stream_client';

// The whole path a kubelet takes: CRI Exec/PortForward RPC → single-use URL →
// SPDY or WebSocket session → a real container behind berthd.
describe('streaming through berthd end to end', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  let podId: string;
  let containerId: string;

  before(async () => {
    fx = await startContainerFixture();
    const cfg = podConfig(fx);
    podId = (await fx.berthd.cri.runtime.RunPodSandbox({ config: cfg })).podSandboxId;
    containerId = (
      await fx.berthd.cri.runtime.CreateContainer({ podSandboxId: podId, config: containerConfig(fx.image, 'streams'), sandboxConfig: cfg })
    ).containerId;
    await fx.berthd.cri.runtime.StartContainer({ containerId });
  });
  after(async () => {
    await fx?.cleanup();
  });
  const rt = () => fx.berthd.cri.runtime;

  it('execs over SPDY with stdin, separate stdout/stderr and the exit code', async () => {
    const { url } = await rt().Exec({ containerId, cmd: ['sh', '-c', 'cat; echo err >&2; exit 3'], stdin: true, stdout: true, stderr: true });
    const client = await connectSpdy(url, ['v4.channel.k8s.io']);
    assert.ok(!isFailure(client), 'upgrade accepted');
    const r = await execSpdy(client, { stdin: 'piped\n', stdout: true, stderr: true });
    assert.equal(r.stdout, 'piped\n');
    assert.equal(r.stderr, 'err\n');
    assert.match(r.error, /"reason":"NonZeroExitCode"/);
    assert.match(r.error, /"message":"3"/);
    // The URL was single-use.
    const again = await connectSpdy(url, ['v4.channel.k8s.io']);
    assert.ok(isFailure(again) && again.status === 404);
  });

  it('execs over WebSocket (v5) with a tty', async () => {
    const { url } = await rt().Exec({ containerId, cmd: ['tty'], tty: true, stdout: true });
    const client = await connectWebSocket(url, ['v5.channel.k8s.io']);
    assert.ok(!isFailure(client));
    const r = await execWebSocket(client, { stdout: true, tty: true });
    assert.match(r.stdout, /^\/dev\/pts\/\d+\r?\n$/);
    assert.match(r.error, /Success/);
  });

  it('refuses exec URLs for a container that is not running', async () => {
    await assert.rejects(rt().Exec({ containerId: 'nope', cmd: ['true'], stdout: true }), (e) => (e as grpc.ServiceError).code === 5);
  });

  it('forwards a port of a (host-network) pod', async () => {
    const server = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const { url } = await rt().PortForward({ podSandboxId: podId, port: [port] });
      const client = await connectSpdy(url, ['portforward.k8s.io']);
      assert.ok(!isFailure(client));
      const { data } = await openPortForward(client.session, port, '0');
      data.end('ping through berth');
      assert.equal((await collect(data)).toString(), 'ping through berth');
      client.session.close();
    } finally {
      server.close();
    }
  });
});
