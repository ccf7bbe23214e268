// The streaming server's backends for real containers: exec runs the command
// under the berth-exec supervisor (src/shim/EXEC.md), attach joins the
// container's stdio through its shim, port-forward dials 127.0.0.1:port in the
// pod's network namespace (or the host's, for host-network pods).
import * as net from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import { BerthError, failedPrecondition, notFound } from '../errors';
import type { SandboxService } from '../sandbox/service';
import type { SupervisedExec } from '../runtime/exec_supervisor';
import type {
  AttachBackend,
  ExecBackend,
  PortForwardBackend,
  StreamingBackends,
  StreamSession,
} from '../streaming/backend';
import { NetnsPortForwardBackend } from '../streaming/portforward_netns';
import type { ContainerService } from './service';

/** What the backends need of the container service (ContainerService has it). */
export type StreamingContainers = Pick<ContainerService, 'execTarget' | 'status' | 'attach'>;
/** What port-forward needs of the sandbox service (SandboxService has it). */
export type StreamingPods = Pick<SandboxService, 'get'>;

/** After the exec'd process exited, output still arriving is passed on until the pipes stay idle this long. */
const EXEC_DRAIN_IDLE_MS = 300;
/** ...but not longer than this (a background child may keep writing), unless the client is the one holding it up. */
const EXEC_DRAIN_MAX_MS = 5000;

/**
 * Resolves once every stream closed, or once none delivered anything for
 * idleMs (a background child may hold the pipes open) while none was held up
 * by the client's backpressure, or at maxMs, or when the client left.
 */
function drainAfterExit(streams: Readable[], signal: AbortSignal): Promise<void> {
  const open = streams.filter((s) => !s.closed && !s.destroyed);
  if (open.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let last = Date.now();
    const start = last;
    const onData = (): void => {
      last = Date.now();
    };
    let pending = open.length;
    const finish = (): void => {
      clearInterval(timer);
      signal.removeEventListener('abort', finish);
      for (const s of open) s.off('data', onData);
      resolve();
    };
    for (const s of open) {
      s.on('data', onData);
      s.once('close', () => {
        if (--pending === 0) finish();
      });
    }
    signal.addEventListener('abort', finish);
    const timer = setInterval(() => {
      const now = Date.now();
      const heldByClient = open.some((s) => !s.closed && s.isPaused());
      if (heldByClient) last = now;
      if (now - last >= EXEC_DRAIN_IDLE_MS || (!heldByClient && now - start >= EXEC_DRAIN_MAX_MS)) finish();
    }, 50);
  });
}

function pipeOut(from: Readable, to: Writable | null): void {
  if (to) from.pipe(to, { end: false });
  else from.resume();
}

export class ContainerExecBackend implements ExecBackend {
  constructor(private readonly containers: StreamingContainers) {}

  async exec(containerId: string, cmd: string[], session: StreamSession): Promise<number> {
    const target = await this.containers.execTarget(containerId, cmd, session.tty);
    if (session.signal.aborted) throw failedPrecondition(`exec in ${target.id}: the client went away before it started`);
    const ex = await target.start({ tty: session.tty, stdin: session.stdin !== null });
    return runSession(ex, session);
  }
}

async function runSession(ex: SupervisedExec, session: StreamSession): Promise<number> {
  if (session.stdin && ex.stdin) session.stdin.pipe(ex.stdin);
  pipeOut(ex.stdout, session.stdout);
  // With a terminal the supervisor's stderr carries only the runtime's own messages.
  if (session.tty) ex.stderr.resume();
  else pipeOut(ex.stderr, session.stderr);
  if (session.tty) session.onResize((size) => ex.resize(size.width, size.height));
  const onAbort = (): void => ex.kill();
  if (session.signal.aborted) onAbort();
  else session.signal.addEventListener('abort', onAbort);
  try {
    const code = await ex.exited;
    await drainAfterExit([ex.stdout, ex.stderr], session.signal);
    return code;
  } finally {
    session.signal.removeEventListener('abort', onAbort);
    if (session.stdin && ex.stdin) session.stdin.unpipe(ex.stdin);
    if (session.stdout) ex.stdout.unpipe(session.stdout);
    if (session.stderr) ex.stderr.unpipe(session.stderr);
    ex.stdout.destroy();
    ex.stderr.destroy();
    ex.stdin?.destroy();
  }
}

export class ContainerAttachBackend implements AttachBackend {
  constructor(private readonly containers: StreamingContainers) {}

  async attach(containerId: string, session: StreamSession): Promise<void> {
    const rec = await this.containers.status(containerId);
    if (rec.state !== 'CONTAINER_RUNNING') {
      throw failedPrecondition(`container ${rec.id} is ${rec.state.replace('CONTAINER_', '').toLowerCase()}, not running; cannot attach to it`);
    }
    const tty = rec.config.tty;
    // As containerd: input for a container created without stdin is ignored.
    const withStdin = session.stdin !== null && rec.config.stdin;
    const a = await this.containers.attach(rec, { stdin: withStdin, stdout: true, stderr: !tty && session.stderr !== null });
    if (withStdin && session.stdin && a.stdin) session.stdin.pipe(a.stdin);
    else session.stdin?.resume();
    if (a.stdout) pipeOut(a.stdout, session.stdout);
    if (a.stderr) pipeOut(a.stderr, session.stderr);
    if (tty) {
      session.onResize((size) => {
        try {
          a.resize(size.width, size.height);
        } catch {
          // out-of-range size: ignored, as a terminal would
        }
      });
    }
    const onAbort = (): void => a.close();
    if (session.signal.aborted) onAbort();
    else session.signal.addEventListener('abort', onAbort);
    try {
      await a.exit;
      // The shim's streams have ended; let what they hold reach the client.
      const ends = [a.stdout, a.stderr]
        .filter((s): s is NonNullable<typeof s> => s !== null && !s.readableEnded && !s.destroyed)
        .map((s) => new Promise<void>((r) => s.once('end', () => r()).once('close', () => r())));
      if (ends.length && !session.signal.aborted) {
        await Promise.race([Promise.all(ends), new Promise<void>((r) => session.signal.addEventListener('abort', () => r()))]);
      }
    } finally {
      session.signal.removeEventListener('abort', onAbort);
      if (session.stdin && a.stdin) session.stdin.unpipe(a.stdin);
      a.close();
    }
  }
}

export class PodPortForwardBackend implements PortForwardBackend {
  private readonly netns: NetnsPortForwardBackend;

  constructor(private readonly sandboxes: StreamingPods) {
    this.netns = new NetnsPortForwardBackend({ netnsPath: (id) => this.sandboxes.get(id).nsPaths.net });
  }

  async portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex> {
    let pod;
    try {
      pod = this.sandboxes.get(podSandboxId);
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw notFound(`pod sandbox "${podSandboxId}" not found`);
    }
    if (pod.state !== 'ready') throw failedPrecondition(`pod sandbox ${pod.id} is not ready; cannot forward ports into it`);
    if (pod.namespaceModes.network !== 'NODE') return this.netns.portForward(pod.id, port, signal);
    // Host network: the pod's 127.0.0.1 is the host's.
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const onAbort = (): void => void sock.destroy();
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once('close', () => signal.removeEventListener('abort', onAbort));
    return sock;
  }
}

/** The streaming backends for the daemon: exec, attach and port-forward against real containers and pods. */
export function containerStreamingBackends(containers: StreamingContainers, sandboxes: StreamingPods): StreamingBackends {
  return {
    exec: new ContainerExecBackend(containers),
    attach: new ContainerAttachBackend(containers),
    portForward: new PodPortForwardBackend(sandboxes),
  };
}
