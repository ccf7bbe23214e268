// Starts berth-exec supervisors without forking berthd: a fork of the daemon
// blocks its event loop for 1-2 ms (its page tables are copied), so one
// `berth-exec --launcher` (src/shim/launcher.c) forks them instead and hands
// their stdio and control sockets back over Node's IPC channel, as
// berth-nsdial hands back connections. The launcher reaps the supervisors and
// reports their exits; it is started on first use and again if it died.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { internal } from '../errors';

/** How a supervisor ended, as its parent (the launcher) saw it; `lost` when the launcher went first. */
export interface SupervisorOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  lost?: string;
}

/** A supervisor waiting for its RUN frame: its pid and berthd's ends of its stdio and control socket. */
export interface LaunchedSupervisor {
  pid: number;
  /** Null unless asked for (the supervisor's stdin is /dev/null then). */
  stdin: Socket | null;
  stdout: Socket;
  stderr: Socket;
  control: Socket;
  /** Settles once the supervisor is gone. */
  outcome: Promise<SupervisorOutcome>;
}

interface Pending {
  sockets: Array<Socket | undefined>;
  resolve: (s: LaunchedSupervisor) => void;
  reject: (err: Error) => void;
}

type LauncherMessage =
  | { id: number; fd: number }
  | { id: number; pid: number }
  | { id: number; error: string }
  | { exited: number; code: number; signal: number };

function isMessage(v: unknown): v is LauncherMessage {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.id === 'number' || typeof o.exited === 'number';
}

function signalName(n: number): NodeJS.Signals | null {
  const hit = Object.entries(constants.signals).find(([, num]) => num === n);
  return hit ? (hit[0] as NodeJS.Signals) : null;
}

export class SupervisorLauncher {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number, (o: SupervisorOutcome) => void>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly binary: string) {}

  /** A new supervisor, with a stdin socket or not. */
  launch(stdin: boolean): Promise<LaunchedSupervisor> {
    if (this.closed) return Promise.reject(internal('the exec launcher is closed'));
    const child = this.child ?? this.startLauncher();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { sockets: [], resolve, reject });
      this.holdLoop();
      child.send({ start: id, stdin }, (err) => {
        if (err) this.settle(id, internal(`cannot ask the exec launcher: ${err.message}`));
      });
    });
  }

  /** Closes the channel: the launcher leaves, and with it any supervisor that never got orders. */
  close(): void {
    this.closed = true;
    this.child?.disconnect();
  }

  private startLauncher(): ChildProcess {
    const child = spawn(this.binary, ['--launcher'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.child = child;
    child.on('message', (msg: unknown, handle: unknown) => this.onMessage(msg, handle as Socket | undefined));
    const gone = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      for (const id of [...this.pending.keys()]) this.settle(id, internal(`the exec launcher ${why}`));
      for (const [pid, done] of this.running) {
        this.running.delete(pid);
        done({ code: null, signal: null, lost: `the exec launcher ${why}` });
      }
    };
    child.on('error', (err) => gone(`could not run: ${err.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `status ${String(code)}`})`));
    this.releaseLoop();
    return child;
  }

  private onMessage(msg: unknown, handle: Socket | undefined): void {
    if (!isMessage(msg)) {
      handle?.destroy();
      return;
    }
    if ('exited' in msg) {
      const done = this.running.get(msg.exited);
      this.running.delete(msg.exited);
      done?.({ code: msg.code >= 0 ? msg.code : null, signal: msg.signal > 0 ? signalName(msg.signal) : null });
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) {
      handle?.destroy();
      return;
    }
    if ('fd' in msg) {
      if (handle && msg.fd >= 0 && msg.fd <= 3) {
        // A supervisor that dies while it waits must not take berthd with an unhandled 'error'.
        handle.on('error', () => undefined);
        p.sockets[msg.fd] = handle;
      } else handle?.destroy();
      return;
    }
    if ('error' in msg) return this.settle(msg.id, internal(msg.error));
    const [stdin, stdout, stderr, control] = p.sockets;
    if (!stdout || !stderr || !control) return this.settle(msg.id, internal('the exec launcher sent too few sockets'));
    const outcome = new Promise<SupervisorOutcome>((r) => this.running.set(msg.pid, r));
    this.pending.delete(msg.id);
    this.releaseLoop();
    p.resolve({ pid: msg.pid, stdin: stdin ?? null, stdout, stderr, control, outcome });
  }

  private settle(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    for (const s of p.sockets) s?.destroy();
    this.releaseLoop();
    p.reject(err);
  }

  /** The launcher keeps the event loop alive only while a launch is in flight (berthd's servers keep it alive otherwise). */
  private holdLoop(): void {
    this.child?.ref();
    this.child?.channel?.ref();
  }

  private releaseLoop(): void {
    if (this.pending.size > 0) return;
    this.child?.unref();
    this.child?.channel?.unref();
  }
}
