// berth-exec supervisors (src/shim/EXEC.md) as berth-launch starts them: its
// `supervise` request forks one and hands berthd its stdio and control
// sockets over Node's IPC channel (src/launch/PROTOCOL.md), then reports its
// exit there. This module keeps that bookkeeping for launch.ts, and starts a
// supervisor with node:child_process where there is no berth-launch (tests
// that use modules directly): its stdio pipes are socketpairs too.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { internal } from '../errors';

/** How a supervisor ended, as its parent saw it; `lost` when its parent (berth-launch) went first. */
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

type ChannelMessage =
  | { id: number; fd: number }
  | { id: number; pid: number }
  | { id: number; error: string }
  | { exited: number; code: number; signal: number };

function isMessage(v: unknown): v is ChannelMessage {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.id === 'number' || typeof o.exited === 'number';
}

function signalName(n: number): NodeJS.Signals | null {
  const hit = Object.entries(constants.signals).find(([, num]) => num === n);
  return hit ? (hit[0] as NodeJS.Signals) : null;
}

/** The supervisors one berth-launch is starting (by request id) and running (by pid). */
export class SupervisorHandover {
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number, (o: SupervisorOutcome) => void>();

  /** The supervisor of request `id`, once its sockets and pid arrived on the channel. */
  expect(id: number): Promise<LaunchedSupervisor> {
    return new Promise((resolve, reject) => this.pending.set(id, { sockets: [], resolve, reject }));
  }

  /** One message from berth-launch's IPC channel, with the socket it carried. */
  onMessage(msg: unknown, handle: Socket | undefined): void {
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
    if ('error' in msg) return this.fail(msg.id, internal(msg.error));
    const [stdin, stdout, stderr, control] = p.sockets;
    if (!stdout || !stderr || !control) return this.fail(msg.id, internal('berth-launch sent too few sockets'));
    const outcome = new Promise<SupervisorOutcome>((r) => this.running.set(msg.pid, r));
    this.pending.delete(msg.id);
    p.resolve({ pid: msg.pid, stdin: stdin ?? null, stdout, stderr, control, outcome });
  }

  /** Rejects request `id` (berth-launch refused it, or is gone), closing the sockets it had sent. */
  fail(id: number, err: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    for (const s of p.sockets) s?.destroy();
    p.reject(err);
  }

  /** berth-launch is gone: its supervisors' exits will not be reported (they leave with it, PDEATHSIG). */
  lost(why: string): void {
    for (const [pid, done] of this.running) {
      this.running.delete(pid);
      done({ code: null, signal: null, lost: why });
    }
  }
}

/** A supervisor started by berthd itself (no berth-launch): Node's stdio pipes are socketpairs. */
export function superviseDirect(binary: string, stdin: boolean): Promise<LaunchedSupervisor> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['--control-fd', '3'], { stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'] });
    child.unref(); // its sockets hold the event loop while it is in use (SupervisorPool)
    const outcome = new Promise<SupervisorOutcome>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    child.once('error', (err) => reject(internal(`cannot start berth-exec: ${err.message}`)));
    child.once('spawn', () => {
      const [i, o, e, c] = child.stdio as Array<Socket | null>;
      if (!o || !e || !c || child.pid === undefined) return reject(internal('berth-exec: stdio pipes missing'));
      for (const s of [i, o, e, c]) s?.on('error', () => undefined);
      resolve({ pid: child.pid, stdin: i, stdout: o, stderr: e, control: c, outcome });
    });
  });
}
