// Connects a spawned process (e.g. `runc exec`) to an exec session: stdin in,
// stdout/stderr out with backpressure, killed when the client goes away, and
// settled only once it has exited and all of its output has been passed on.
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { StreamSession } from './backend';

export interface ChildSessionOptions {
  /** How to stop the process when the client leaves; default SIGKILL to the child. */
  kill?: () => void;
}

/** Exit code as a shell reports it: the code, or 128 + signal number. */
function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const num = signal ? constants.signals[signal] : undefined;
  return num !== undefined ? 128 + num : 255;
}

/** The child must have been spawned with stdio 'pipe'. */
export function runChildInSession(child: ChildProcess, session: StreamSession, opts: ChildSessionOptions = {}): Promise<number> {
  const stdin = child.stdin;
  stdin?.on('error', () => undefined); // EPIPE when the process exits without reading
  if (session.stdin && stdin) session.stdin.pipe(stdin);
  else stdin?.end();
  // end:false — the server ends the client streams after the exit status is known.
  if (session.stdout) child.stdout?.pipe(session.stdout, { end: false });
  else child.stdout?.resume();
  if (session.stderr) child.stderr?.pipe(session.stderr, { end: false });
  else child.stderr?.resume();
  const kill = opts.kill ?? ((): void => void child.kill('SIGKILL'));
  const onAbort = (): void => kill();
  if (session.signal.aborted) kill();
  else session.signal.addEventListener('abort', onAbort);
  return new Promise((resolve, reject) => {
    const done = (): void => {
      session.signal.removeEventListener('abort', onAbort);
      if (session.stdin && stdin) session.stdin.unpipe(stdin);
    };
    child.once('error', (err) => {
      done();
      reject(err);
    });
    // 'close' follows exit and the end of stdout/stderr: all output is through.
    child.once('close', (code, signal) => {
      done();
      resolve(exitCode(code, signal));
    });
  });
}
