// Runs one process in a running container under berth-exec (src/shim/exec.c,
// src/shim/EXEC.md): the supervisor runs `<runtime> exec --detach`, inherits
// the process as a child subreaper, relays a terminal when asked, and reports
// the exit status on a control socket (fd 3), over which it also takes
// RESIZE and KILL. If berthd goes away the socket's EOF kills the process.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fsp from 'node:fs/promises';
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
  /** Private directory for the call's files (process.json, pid file, log, console socket); removed by the caller. */
  scratchDir: string;
  tty: boolean;
  /** Give the process a stdin pipe (non-tty) / relay input to the terminal (tty). */
  stdin: boolean;
  /** Reads the runtime's error messages once it failed (from its --log). */
  runtimeErrors: (logFile: string) => Promise<string[]>;
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

export async function spawnSupervisedExec(opts: SupervisedExecSpawn, process: unknown): Promise<SupervisedExec> {
  const logFile = path.join(opts.scratchDir, 'log.json');
  const processFile = path.join(opts.scratchDir, 'process.json');
  const pidFile = path.join(opts.scratchDir, 'exec.pid');
  await fsp.writeFile(processFile, JSON.stringify(process), { mode: 0o600 });
  const args = [
    '--runtime', opts.runtime, '--root', opts.runtimeRoot, '--log', logFile,
    '--process', processFile, '--pid-file', pidFile, '--control-fd', '3',
  ];
  // A unix socket path is short (107 bytes): <state>/tmp/<handler>-exec-XXXXXX/console.sock fits with /run/berth.
  if (opts.tty) args.push('--tty', '--console-socket', path.join(opts.scratchDir, 'console.sock'));
  args.push(opts.containerId);
  const child = spawn(execSupervisorPath(), args, {
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  const control = child.stdio[3] as Socket;
  control.setEncoding('utf8');
  control.on('error', () => undefined);
  child.stdin?.on('error', () => undefined); // EPIPE when the process exits without reading

  let pidResolve: (pid: number | null) => void = () => undefined;
  const pid = new Promise<number | null>((r) => (pidResolve = r));
  let exitLine: number | undefined;
  let failLine: string | undefined;
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
    }
    if (buffered.length > 8192) buffered = '';
  });
  const controlClosed = new Promise<void>((r) => control.once('close', () => r()));
  const childExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  let killTimer: NodeJS.Timeout | undefined;
  const exited = (async (): Promise<number> => {
    const ex = await childExit;
    if (ex.spawnError) {
      control.destroy();
      throw internal(`cannot run ${execSupervisorPath()}: ${errorMessage(ex.spawnError)}`, ex.spawnError);
    }
    await controlClosed;
    if (killTimer) clearTimeout(killTimer);
    pidResolve(null);
    if (exitLine !== undefined && Number.isInteger(exitLine)) return exitLine;
    if (failLine !== undefined) {
      const errors = await opts.runtimeErrors(logFile);
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

/** A private (0700) scratch directory for one exec, in berth's own tmp directory (emptied at start). */
export function execScratchDir(tmpDir: string, handlerName: string): Promise<string> {
  return fsp.mkdtemp(path.join(tmpDir, `${handlerName}-exec-`));
}
