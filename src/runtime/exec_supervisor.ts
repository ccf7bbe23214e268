// Runs one process in a running container under berth-exec (src/shim/exec.c,
// src/shim/EXEC.md): the supervisor runs `<runtime> exec --detach`, inherits
// the process as a child subreaper, relays a terminal when asked, and reports
// the exit status on a control socket (fd 3), over which it also takes
// RESIZE and KILL. If berthd goes away the socket's EOF kills the process.
// Supervisors are spawned ahead of need (SupervisorPool) and told what to run
// with a RUN frame on that socket; each makes and removes its own scratch files.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';
import { BerthError, errorMessage, internal } from '../errors';

/** The berth-exec binary: $BERTH_EXEC, else <repo>/build/berth-exec next to dist/. */
export function execSupervisorPath(): string {
  const fromEnv = process.env.BERTH_EXEC;
  if (fromEnv) return fromEnv;
  return path.resolve(__dirname, '..', '..', '..', 'build', 'berth-exec');
}

export interface SupervisedExecSpawn {
  /** Runtime binary and its --root. */
  runtime: string;
  runtimeRoot: string;
  containerId: string;
  /** Where the supervisor makes its private scratch directory (process.json, pid file, log, console socket) and removes it. */
  tmpDir: string;
  tty: boolean;
  /** Give the process a stdin pipe (non-tty) / relay input to the terminal (tty). */
  stdin: boolean;
  /** Picks the runtime's error messages out of its log (the supervisor's LOG lines) once it failed. */
  runtimeErrors: (logLines: string[]) => string[];
  /** Turns the runtime's message into a typed error. */
  toError: (message: string) => BerthError;
}

export interface SupervisedExec {
  /** To the process (non-tty) or the terminal (tty); null without stdin. */
  readonly stdin: Writable | null;
  /** The process's stdout, or the terminal's output. */
  readonly stdout: Readable;
  /** The process's stderr (non-tty; the runtime's own messages may appear here too) or the runtime's stderr (tty). */
  readonly stderr: Readable;
  /** Host pid of the process, once the runtime started it (null if it never did). */
  readonly pid: Promise<number | null>;
  /**
   * Exit code (128+signal when killed by one) once the supervisor is gone;
   * rejects with a typed error if the process could not be started.
   */
  readonly exited: Promise<number>;
  resize(width: number, height: number): void;
  /** SIGKILLs the process (and what it left behind); `exited` then settles. */
  kill(): void;
  readonly child: ChildProcess;
}

/** How long the supervisor gets to exit after KILL before it is SIGKILLed itself. */
const SUPERVISOR_KILL_GRACE_MS = 5000;
/** LOG lines kept from one supervisor (the runtime's log of a failed start is a few lines). */
const MAX_LOG_LINES = 64;

interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: Error;
}

/** A berth-exec started without orders: it waits for its RUN frame on the control socket (fd 3). */
interface WaitingSupervisor {
  child: ChildProcess;
  control: Socket;
  /** Settles when the supervisor is gone (or could not be spawned); taken at spawn so no event is missed while it waits. */
  outcome: Promise<ChildOutcome>;
}

function spawnWaiting(stdin: boolean): WaitingSupervisor {
  const child = spawn(execSupervisorPath(), ['--control-fd', '3'], {
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  const control = child.stdio[3] as Socket;
  control.on('error', () => undefined);
  child.stdin?.on('error', () => undefined); // EPIPE when the process exits without reading
  const outcome = new Promise<ChildOutcome>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, control, outcome };
}

function stillWaiting(w: WaitingSupervisor): boolean {
  return w.child.pid !== undefined && w.child.exitCode === null && w.child.signalCode === null && !w.control.destroyed;
}

/** Holds or lets go of the event loop for a waiting supervisor and its pipes. */
function setRef(w: WaitingSupervisor, ref: boolean): void {
  for (const h of [w.child, w.control, w.child.stdin, w.child.stdout, w.child.stderr]) {
    const s = h as { ref?: () => void; unref?: () => void } | null;
    if (ref) s?.ref?.();
    else s?.unref?.();
  }
}

/**
 * Supervisors started ahead of need, one per stdio shape (with or without a
 * stdin pipe), so an exec does not wait for berthd to fork (a fork of the
 * daemon blocks its event loop for 1-2 ms): the one taken is replaced while
 * the runtime starts the process. Nothing is held for a shape not yet used.
 */
export class SupervisorPool {
  private readonly waiting = new Map<boolean, WaitingSupervisor>();
  private closed = false;

  take(stdin: boolean): WaitingSupervisor {
    const held = this.waiting.get(stdin);
    this.waiting.delete(stdin);
    if (!this.closed) setImmediate(() => this.refill(stdin));
    if (held && stillWaiting(held)) {
      setRef(held, true);
      return held;
    }
    if (held) held.control.destroy();
    return spawnWaiting(stdin);
  }

  /** Lets the waiting supervisors go (their control socket's EOF ends them); nothing is started after. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w.control.destroy();
    this.waiting.clear();
  }

  private refill(stdin: boolean): void {
    if (this.closed || this.waiting.has(stdin)) return;
    const w = spawnWaiting(stdin);
    setRef(w, false);
    this.waiting.set(stdin, w);
    void w.outcome.then(() => {
      if (this.waiting.get(stdin) === w) this.waiting.delete(stdin);
    });
  }
}

/** The RUN frame (EXEC.md): its header, the NUL-terminated arguments, the process JSON. */
function runFrame(opts: SupervisedExecSpawn, process: unknown): Buffer {
  const args = ['--runtime', opts.runtime, '--root', opts.runtimeRoot, '--tmp-dir', opts.tmpDir, ...(opts.tty ? ['--tty'] : []), opts.containerId];
  const argBytes = Buffer.from(args.map((a) => `${a}\0`).join(''), 'utf8');
  const processBytes = Buffer.from(JSON.stringify(process), 'utf8');
  return Buffer.concat([Buffer.from(`RUN ${argBytes.length} ${processBytes.length}\n`, 'latin1'), argBytes, processBytes]);
}

export function startSupervisedExec(pool: SupervisorPool, opts: SupervisedExecSpawn, process: unknown): SupervisedExec {
  const { child, control, outcome } = pool.take(opts.stdin);
  control.setEncoding('utf8');
  control.write(runFrame(opts, process));

  let pidResolve: (pid: number | null) => void = () => undefined;
  const pid = new Promise<number | null>((r) => (pidResolve = r));
  let exitLine: number | undefined;
  let failLine: string | undefined;
  const logLines: string[] = [];
  let buffered = '';
  control.on('data', (d: string) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('PID ')) pidResolve(Number(line.slice(4)));
      else if (line.startsWith('EXIT ')) exitLine = Number(line.slice(5));
      else if (line.startsWith('FAIL ')) failLine = line.slice(5);
      else if (line.startsWith('LOG ') && logLines.length < MAX_LOG_LINES) logLines.push(line.slice(4));
    }
    if (buffered.length > 8192) buffered = '';
  });
  const controlClosed = new Promise<void>((r) => {
    if (control.closed) r();
    else control.once('close', () => r());
  });

  let killTimer: NodeJS.Timeout | undefined;
  const exited = (async (): Promise<number> => {
    const ex = await outcome;
    if (ex.spawnError) {
      control.destroy();
      throw internal(`cannot run ${execSupervisorPath()}: ${errorMessage(ex.spawnError)}`, ex.spawnError);
    }
    await controlClosed;
    if (killTimer) clearTimeout(killTimer);
    pidResolve(null);
    if (exitLine !== undefined && Number.isInteger(exitLine)) return exitLine;
    if (failLine !== undefined) {
      const errors = opts.runtimeErrors(logLines);
      throw opts.toError(errors.length > 0 ? errors.join('; ') : failLine);
    }
    throw internal(
      `exec in ${opts.containerId}: the exec supervisor exited without a status (${ex.signal ?? `status ${String(ex.code)}`})`,
    );
  })();
  exited.catch(() => undefined);

  const sendControl = (line: string): void => {
    if (!control.destroyed && control.writable) control.write(`${line}\n`);
  };
  return {
    stdin: child.stdin,
    stdout: child.stdout as Readable,
    stderr: child.stderr as Readable,
    pid,
    exited,
    child,
    resize(width: number, height: number): void {
      sendControl(`RESIZE ${Math.max(0, Math.min(65535, Math.trunc(width)))} ${Math.max(0, Math.min(65535, Math.trunc(height)))}`);
    },
    kill(): void {
      if (child.exitCode !== null || child.signalCode !== null) return;
      sendControl('KILL');
      killTimer ??= setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, SUPERVISOR_KILL_GRACE_MS);
    },
  };
}
