import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { silentLogger } from '../../src/log/logger';
import { StreamingServer } from '../../src/streaming/server';
import type { ExecRequest__Output } from '../../src/gen/runtime/v1/ExecRequest';
import {
  connectSpdy,
  connectWebSocket,
  execSpdy,
  execWebSocket,
  isFailure,
  openPortForward,
  collect,
} from '../helpers/stream_client';
import { localBackends, startEchoServer } from '../helpers/local_backends';

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

/** Live child processes of this test process. */
function childPids(): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(d));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

async function until(cond: () => boolean, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
}

describe('streaming: no leaks over many sessions', function () {
  this.timeout(120000);
  const backends = localBackends();
  let server: StreamingServer;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;

  before(async () => {
    echo = await startEchoServer();
    server = new StreamingServer({ address: '127.0.0.1', port: 0, tokenTtlSeconds: 60, backends, logger: silentLogger() });
    await server.start();
  });
  after(async () => {
    await server.stop();
    await echo.close();
  });

  const req = (cmd: string[], stdin = false): ExecRequest__Output => ({
    containerId: 'c',
    cmd,
    tty: false,
    stdin,
    stdout: true,
    stderr: true,
  });

  async function oneSession(i: number, alone = false): Promise<void> {
    switch (i % 4) {
      case 0: {
        const c = await connectSpdy(server.getExecUrl(req(['cat'], true)), ['v4.channel.k8s.io']);
        if (isFailure(c)) throw new Error(c.body);
        const r = await execSpdy(c, { stdin: `n${i}`, stderr: true });
        assert.equal(r.stdout, `n${i}`);
        return;
      }
      case 1: {
        const c = await connectWebSocket(server.getExecUrl(req(['sh', '-c', 'exit 7'])), ['v5.channel.k8s.io']);
        if (isFailure(c)) throw new Error(c.body);
        const r = await execWebSocket(c, {});
        assert.match(r.error, /"message":"7"/);
        return;
      }
      case 2: {
        // The client walks away mid-session: the process must be killed and reaped.
        const c = await connectSpdy(server.getExecUrl(req(['sleep', '30'], false)), ['v4.channel.k8s.io']);
        if (isFailure(c)) throw new Error(c.body);
        await c.session.openStream([['streamType', 'error']]);
        await c.session.openStream([['streamType', 'stdout']]);
        const started = backends.exec.started;
        await c.session.openStream([['streamType', 'stderr']]);
        await until(() => backends.exec.started > started || backends.exec.pids.size > 0, 2000);
        if (alone) assert.equal(server.sessionsByKind().exec, 1, 'the open exec session is counted by kind');
        c.socket.destroy();
        return;
      }
      default: {
        const c = await connectSpdy(server.getPortForwardUrl({ podSandboxId: 'p', port: [] }), ['portforward.k8s.io']);
        if (isFailure(c)) throw new Error(c.body);
        const pf = await openPortForward(c.session, echo.port, '1');
        const reply = collect(pf.data);
        pf.data.end('x');
        assert.equal((await reply).toString(), 'xBYE');
        await pf.errorText;
        c.session.close();
      }
    }
  }

  it('500 sessions (exec, websocket, aborted, port-forward) leave fds, sockets and processes at baseline', async () => {
    for (let i = 0; i < 8; i++) await oneSession(i, true); // warm up lazily created handles, one session at a time
    await until(() => server.activeSessions === 0 && backends.exec.pids.size === 0);
    const baseFds = openFds();
    // Children of this process not made here (an earlier test's, still exiting) are not this test's leak.
    const baseChildren = new Set(childPids());
    const newChildren = (): number[] => childPids().filter((p) => !baseChildren.has(p));
    const total = 500;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) await oneSession(next++);
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await until(() => server.activeSessions === 0 && backends.exec.pids.size === 0 && newChildren().length === 0 && openFds() <= baseFds + 2);
    assert.equal(server.activeSessions, 0, 'sessions closed');
    assert.deepEqual(server.sessionsByKind(), { exec: 0, attach: 0, portforward: 0 });
    assert.equal(backends.exec.pids.size, 0, 'every process reaped');
    assert.deepEqual(newChildren(), [], 'no child processes left');
    assert.ok(openFds() <= baseFds + 2, `fds back to baseline: ${openFds()} vs ${baseFds}`);
    assert.equal(server.pendingTokens, 0);
  });
});
