// Simple local backends for the streaming server's tests: exec runs the
// command as a host process (under `script` for a tty, since Node has no pty
// API), attach connects to an in-memory "container", port-forward dials
// 127.0.0.1 on the host.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { notFound } from '../../src/errors';
import { runChildInSession } from '../../src/streaming/child_session';
import type {
  AttachBackend,
  ExecBackend,
  PortForwardBackend,
  StreamingBackends,
  StreamSession,
  TerminalSize,
} from '../../src/streaming/backend';

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class LocalExecBackend implements ExecBackend {
  readonly resizes: TerminalSize[] = [];
  readonly pids = new Set<number>();
  started = 0;

  exec(containerId: string, cmd: string[], session: StreamSession): Promise<number> {
    if (containerId === 'missing') return Promise.reject(notFound(`container ${containerId} not found`));
    this.started++;
    const child: ChildProcess = session.tty
      ? spawn('script', ['-qfec', cmd.map(shellQuote).join(' '), '/dev/null'], { stdio: 'pipe' })
      : spawn(cmd[0], cmd.slice(1), { stdio: 'pipe' });
    if (child.pid !== undefined) this.pids.add(child.pid);
    if (session.tty) session.onResize((s) => this.resizes.push(s));
    return runChildInSession(child, session).finally(() => {
      if (child.pid !== undefined) this.pids.delete(child.pid);
    });
  }
}

/** An in-memory container: what the test writes to `output` goes to attached clients; their input lands in `input`. */
export class FakeContainer {
  readonly output = new PassThrough();
  readonly input: Buffer[] = [];
  readonly inputEnded: Promise<void>;
  private endInput!: () => void;
  readonly exited: Promise<void>;
  private exitResolve!: () => void;

  constructor() {
    this.inputEnded = new Promise((r) => (this.endInput = r));
    this.exited = new Promise((r) => (this.exitResolve = r));
  }

  exit(): void {
    this.output.end();
    this.exitResolve();
  }

  takeInput(r: NodeJS.ReadableStream): void {
    r.on('data', (d: Buffer) => {
      this.input.push(d);
      this.output.write(`echo: ${d.toString()}`);
    });
    r.on('end', () => this.endInput());
  }
}

export class FakeAttachBackend implements AttachBackend {
  readonly containers = new Map<string, FakeContainer>();

  async attach(containerId: string, session: StreamSession): Promise<void> {
    const c = this.containers.get(containerId);
    if (!c) throw notFound(`container ${containerId} not found`);
    if (session.stdin) c.takeInput(session.stdin);
    if (session.stdout) c.output.pipe(session.stdout, { end: false });
    await Promise.race([
      c.exited,
      new Promise<void>((resolve) => session.signal.addEventListener('abort', () => resolve())),
    ]);
    if (session.stdout) c.output.unpipe(session.stdout);
  }
}

export class LocalPortForwardBackend implements PortForwardBackend {
  async portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex> {
    if (podSandboxId === 'missing') throw notFound(`pod sandbox ${podSandboxId} not found`);
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    signal.addEventListener('abort', () => sock.destroy());
    return sock;
  }
}

export function localBackends(): StreamingBackends & {
  exec: LocalExecBackend;
  attach: FakeAttachBackend;
  portForward: PortForwardBackend;
} {
  return { exec: new LocalExecBackend(), attach: new FakeAttachBackend(), portForward: new LocalPortForwardBackend() };
}

/** A TCP echo server on 127.0.0.1 that answers half-close with "BYE" then closes. */
export async function startEchoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => undefined);
    c.on('data', (d) => c.write(d));
    c.on('end', () => c.end('BYE'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
