// What the streaming server needs from the rest of berth. The server owns the
// wire protocols; a backend only moves bytes between these Node streams and
// the container (runc exec, the shim's attach socket, the pod's netns).
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

/** The streams of one exec or attach session, already wired to the client. */
export interface StreamSession {
  /** A terminal was requested: stdout carries the pty, there is no stderr. */
  readonly tty: boolean;
  /** Client input; ends when the client closes stdin. null when not requested. */
  readonly stdin: Readable | null;
  /** To the client, with backpressure (honour write()'s return value or use pipe()). */
  readonly stdout: Writable | null;
  readonly stderr: Writable | null;
  /**
   * Registers the terminal-resize listener. The latest size received before
   * registration is delivered at once. Only ever called back when tty is set.
   */
  onResize(listener: (size: TerminalSize) => void): void;
  /** Aborted when the client goes away: stop the process and release everything. */
  readonly signal: AbortSignal;
}

export interface ExecBackend {
  /**
   * Runs `cmd` in the container and resolves with its exit code once it has
   * exited AND all its output has been written to session.stdout/stderr (end
   * them or leave them open; the server ends them). Reject with a BerthError
   * (e.g. notFound) if the command could not be run at all. When
   * session.signal aborts, kill the process and reap it before settling.
   */
  exec(containerId: string, cmd: string[], session: StreamSession): Promise<number>;
}

export interface AttachBackend {
  /**
   * Connects the session to the container's main process and resolves when the
   * attachment ends: the container exited (its output flushed) or the client
   * went away (session.signal). Must not stop the container itself.
   */
  attach(containerId: string, session: StreamSession): Promise<void>;
}

export interface PortForwardBackend {
  /**
   * Opens a TCP connection to 127.0.0.1:port inside the pod's network
   * namespace. The Duplex must support half-close: end() on it shuts the
   * write side, and its readable side ends when the pod side closes. It emits
   * 'error' (message meant for the user) if the connection fails. Reject if
   * the pod is unknown. When signal aborts, release everything.
   */
  portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex>;
}

export interface StreamingBackends {
  exec: ExecBackend;
  attach: AttachBackend;
  portForward: PortForwardBackend;
}
