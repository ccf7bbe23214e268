// Runs one process in a running container under berth-exec (src/shim/exec.c,
// src/shim/EXEC.md): the supervisor runs `<runtime> exec --detach`, inherits
// the process as a child subreaper, relays a terminal when asked, and reports
// the exit status on a control socket (fd 3), over which it also takes
// RESIZE and KILL. If berthd goes away the socket's EOF kills the process.
// Supervisors are started ahead of need (SupervisorPool), by berth-launch
// (launchSupervisor, src/util/launch.ts), and told what to run with a RUN frame on that socket;
// each makes and removes its own scratch files.
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';
import { BerthError, internal } from '../errors';
import { launchSupervisor } from '../util/launch';
import type { LaunchedSupervisor } from '../util/launch_supervisor';

/** The berth-exec binary: $BERTH_EXEC, else <repo>/build/berth-exec next to dist/. */
export function execSupervisorPath(): string {
  const fromEnv = process.env.BERTH_EXEC;
  if (fromEnv) return fromEnv;
  return path.resolve(__dirname, '..', '..', '..', 'build', 'berth-exec');
}

export interface SupervisedExecSpawn {
  /** Runtime binary and its --root. */
  runtime: string;
  /**
   * Exec the runtime from a sealed memfd copy berth-launch made of it (only
   * for runc, whose `runc init` then skips cloning its own binary per call:
   * runtime_copy.c); without berth-launch it is exec'd by path.
   */
  sealedCopy: boolean;
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
  /** The berth-exec process and berthd's end of its control socket (closing it kills the process). */
  readonly supervisor: { readonly pid: number; readonly control: Socket };
}

/** How long the supervisor gets to exit after KILL before it is SIGKILLed itself. */
const SUPERVISOR_KILL_GRACE_MS = 5000;
/** LOG lines kept from one supervisor (the runtime's log of a failed start is a few lines). */
const MAX_LOG_LINES = 64;

/** Holds or lets go of the event loop for a supervisor's sockets. */
function setRef(w: LaunchedSupervisor, ref: boolean): void {
  for (const s of [w.control, w.stdin, w.stdout, w.stderr]) {
    if (ref) s?.ref();
    else s?.unref();
  }
}

/** What a waiting supervisor was started with: a stdin socket or not, and the runtime it holds a copy of ('' none). */
export interface SupervisorShape {
  stdin: boolean;
  runtimeCopy: string;
}

/**
 * Supervisors started ahead of need, one per shape (with or without a stdin
 * socket; the runtime binary whose sealed copy it holds), so an exec only
 * sends its orders: the one taken is replaced (by berth-launch, off berthd's
 * thread) while the runtime starts the process. Nothing is held for a shape
 * not yet used.
 */
export class SupervisorPool {
  private readonly waiting = new Map<string, LaunchedSupervisor>();
  private readonly filling = new Set<string>();
  private closed = false;

  constructor(private readonly binary: string = execSupervisorPath()) {}

  take(shape: SupervisorShape): Promise<LaunchedSupervisor> {
    const key = shapeKey(shape);
    const held = this.waiting.get(key);
    this.waiting.delete(key);
    // After the caller has sent its orders: the launcher is asked while the runtime starts the process.
    setImmediate(() => this.refill(key, shape));
    if (held && !held.control.destroyed) {
      setRef(held, true);
      return Promise.resolve(held);
    }
    return launchSupervisor(this.binary, shape.stdin, shape.runtimeCopy);
  }

  /** Lets the waiting supervisors go (each leaves at its control socket's EOF); nothing is started after. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w.control.destroy();
    this.waiting.clear();
  }

  private refill(key: string, shape: SupervisorShape): void {
    if (this.closed || this.waiting.has(key) || this.filling.has(key)) return;
    this.filling.add(key);
    launchSupervisor(this.binary, shape.stdin, shape.runtimeCopy).then(
      (w) => {
        this.filling.delete(key);
        if (this.closed || this.waiting.has(key)) return void w.control.destroy();
        setRef(w, false);
        this.waiting.set(key, w);
        void w.outcome.then(() => {
          if (this.waiting.get(key) === w) this.waiting.delete(key);
        });
      },
      () => this.filling.delete(key), // the exec that needs one launches it and reports the error
    );
  }
}

function shapeKey(shape: SupervisorShape): string {
  return `${shape.stdin ? 1 : 0}${shape.runtimeCopy}`;
}

/** The RUN frame (EXEC.md): its header, the NUL-terminated arguments, the process JSON. */
function runFrame(opts: SupervisedExecSpawn, processSpec: unknown): Buffer {
  const args = ['--runtime', opts.runtime, '--root', opts.runtimeRoot, '--tmp-dir', opts.tmpDir, ...(opts.tty ? ['--tty'] : []), opts.containerId];
  const argBytes = Buffer.from(args.map((a) => `${a}\0`).join(''), 'utf8');
  const processBytes = Buffer.from(JSON.stringify(processSpec), 'utf8');
  return Buffer.concat([Buffer.from(`RUN ${argBytes.length} ${processBytes.length}\n`, 'latin1'), argBytes, processBytes]);
}

export async function startSupervisedExec(pool: SupervisorPool, opts: SupervisedExecSpawn, processSpec: unknown): Promise<SupervisedExec> {
  const shape = { stdin: opts.stdin, runtimeCopy: opts.sealedCopy ? opts.runtime : '' };
  const sup = await pool.take(shape);
  const { control, outcome } = sup;
  control.on('error', () => undefined);
  sup.stdin?.on('error', () => undefined); // EPIPE when the process exits without reading
  control.setEncoding('utf8');
  control.write(runFrame(opts, processSpec));

  let pidResolve: (pid: number | null) => void = () => undefined;
  const pid = new Promise<number | null>((r) => (pidResolve = r));
  let exitLine: number | undefined;
  let failLine: string | undefined;
  let lastLineSeen: () => void = () => undefined;
  const lastLine = new Promise<void>((r) => (lastLineSeen = r));
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
    if (exitLine !== undefined || failLine !== undefined) lastLineSeen();
  });
  const controlClosed = new Promise<void>((r) => {
    if (control.closed) r();
    else control.once('close', () => r());
  });
  let gone = false;
  void outcome.then(() => (gone = true));

  let killTimer: NodeJS.Timeout | undefined;
  const exited = (async (): Promise<number> => {
    // EXIT or FAIL is the last thing the supervisor does (its scratch directory is gone by then):
    // the status need not wait for its exit, only for the line or, without one, its socket closing.
    await Promise.race([lastLine, controlClosed]);
    if (killTimer) clearTimeout(killTimer);
    pidResolve(null);
    if (exitLine !== undefined && Number.isInteger(exitLine)) return exitLine;
    if (failLine !== undefined) {
      const errors = opts.runtimeErrors(logLines);
      throw opts.toError(errors.length > 0 ? errors.join('; ') : failLine);
    }
    const ex = await outcome;
    throw internal(
      `exec in ${opts.containerId}: the exec supervisor exited without a status (${ex.lost ?? ex.signal ?? `status ${String(ex.code)}`})`,
    );
  })();
  exited.catch(() => undefined);

  const sendControl = (line: string): void => {
    if (!control.destroyed && control.writable) control.write(`${line}\n`);
  };
  return {
    stdin: sup.stdin,
    stdout: sup.stdout,
    stderr: sup.stderr,
    pid,
    exited,
    supervisor: { pid: sup.pid, control },
    resize(width: number, height: number): void {
      sendControl(`RESIZE ${Math.max(0, Math.min(65535, Math.trunc(width)))} ${Math.max(0, Math.min(65535, Math.trunc(height)))}`);
    },
    kill(): void {
      if (gone) return;
      sendControl('KILL');
      killTimer ??= setTimeout(() => {
        // Only while its parent has not reaped it: its pid is not reused before.
        if (!gone) process.kill(sup.pid, 'SIGKILL');
      }, SUPERVISOR_KILL_GRACE_MS);
    },
  };
}
