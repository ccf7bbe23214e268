// Running berthd's helper processes (runc, berth-shim, berth-pinns, CNI
// plugins) to completion, mount(2)/umount(2), and starting berth-exec
// supervisors (launch_supervisor.ts). In berthd they go through
// berth-launch (src/launch/PROTOCOL.md), started once: a fork of berthd itself
// copies the page tables of its ~90 MB and blocks the event loop until the
// child has exec'd (about 2 ms per process on a 2-core machine, three per pod
// start), where berth-launch forks in microseconds. Without it (tests that use
// these modules directly, worker threads) the same requests are served with
// node:child_process, and mounts by the mount/umount programs.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { internal } from '../errors';
import { SupervisorHandover, superviseDirect, type LaunchedSupervisor } from './launch_supervisor';

export interface LaunchOptions {
  /** The child's whole environment (default: berthd's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the child's stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
  /** 0 or absent: none. On expiry the child gets killSignal; the result says timedOut. */
  timeoutMs?: number;
  killSignal?: NodeJS.Signals;
  /** A new session (setsid), as child_process's `detached`. */
  detached?: boolean;
  /** Give the child a pipe as fd 3 and return what it wrote there (berth-shim's --ready-fd). */
  readyFd?: boolean;
  /**
   * The absolute path of a runc binary: through berth-launch the child gets a
   * sealed memfd copy of it as its next fd after stdio, and `--runtime-fd N`
   * after its arguments (berth-shim execs runc from it; src/launch/PROTOCOL.md,
   * runtime copies). Nothing is added when no copy was made, or without berth-launch.
   */
  runtimeCopy?: string;
  /** Bytes kept of each stream; the rest is read and dropped (defaults 4 MiB, 64 KiB, 4 KiB). */
  stdoutCap?: number;
  stderrCap?: number;
  readyCap?: number;
}

/** How the child ended, once it exited and every pipe it had reached EOF (child_process's 'close'). */
export interface LaunchResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
  ready: Buffer;
}

const DEFAULT_CAPS = { stdout: 4 << 20, stderr: 64 << 10, ready: 4 << 10 };
const FLAG_SETSID = 1;
const FLAG_READY_FD = 2;
const FLAG_STDIN = 4;

const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));
const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** The error child_process gives for a program it cannot start (code ENOENT, EACCES, ...). */
function spawnError(file: string, args: readonly string[], errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`spawn ${file} ${code}`), { errno: -errno, code, syscall: `spawn ${file}`, path: file, spawnargs: [...args] });
}

/** An errno from mount(2)/umount(2): the errno's name is the message, as the kernel gives no more. */
function syscallError(syscall: string, target: string, errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  return Object.assign(new Error(`${syscall} ${target}: ${code}`), { errno: -errno, code, syscall, path: target });
}

interface Reply {
  kind: 'exit' | 'signal' | 'error';
  value: number;
  timedOut: boolean;
  streams: [Buffer, Buffer, Buffer];
}

/** One berth-launch process and its pending requests; a new one is started after it exits. */
class Launcher {
  private child?: ChildProcess;
  private readonly pending = new Map<number, (r: Reply | Error) => void>();
  private readonly handover = new SupervisorHandover();
  private nextId = 1;
  private input: Buffer = Buffer.alloc(0);

  constructor(readonly binary: string) {}

  private start(): ChildProcess {
    // The IPC channel (fd 3) carries the sockets of the exec supervisors it starts.
    const child = spawn(this.binary, [], { stdio: ['pipe', 'pipe', 'inherit', 'ipc'] });
    const stdin = child.stdin;
    const stdout = child.stdout;
    if (!stdin || !stdout) throw new Error('berth-launch: stdio pipes missing');
    stdin.on('error', () => undefined); // an exited launcher fails its requests below
    stdout.on('data', (chunk: Buffer) => this.onData(chunk));
    child.on('message', (msg: unknown, handle: unknown) => this.handover.onMessage(msg, handle as Socket | undefined));
    const gone = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      for (const [id, done] of this.pending) {
        this.pending.delete(id);
        done(new Error(`berth-launch ${why}`));
      }
      this.handover.lost(`berth-launch ${why}`);
    };
    child.once('error', (err) => gone(`failed: ${err.message}`));
    child.once('exit', (code, signal) => gone(`exited (${signal ?? `status ${String(code)}`})`));
    child.unref();
    this.child = child;
    this.setRef(false);
    return child;
  }

  /** The launcher keeps berthd's event loop alive only while a request is out. */
  private setRef(on: boolean): void {
    for (const s of [this.child?.stdin, this.child?.stdout, this.child?.channel] as Array<{ ref?: () => void; unref?: () => void } | null | undefined>) {
      if (on) s?.ref?.();
      else s?.unref?.();
    }
  }

  private onData(chunk: Buffer): void {
    this.input = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    while (this.input.length >= 4) {
      const len = this.input.readUInt32BE(0);
      if (this.input.length < 4 + len) break;
      const frame = this.input.subarray(4, 4 + len);
      this.input = this.input.subarray(4 + len);
      const fields: string[] = [];
      let off = 0;
      for (let i = 0; i < 7; i++) {
        const z = frame.indexOf(0, off);
        fields.push(frame.subarray(off, z).toString('utf8'));
        off = z + 1;
      }
      const [id, kind, value, timedOut, ...lens] = fields;
      const streams: Buffer[] = [];
      for (const l of lens) {
        streams.push(Buffer.from(frame.subarray(off, off + Number(l))));
        off += Number(l);
      }
      const done = this.pending.get(Number(id));
      this.pending.delete(Number(id));
      if (this.pending.size === 0) this.setRef(false);
      done?.({ kind: kind as Reply['kind'], value: Number(value), timedOut: timedOut === '1', streams: streams as Reply['streams'] });
    }
  }

  request(fields: readonly string[], data?: Buffer): Promise<Reply> {
    return new Promise((resolve, reject) => this.send(fields, data, (r) => (r instanceof Error ? reject(r) : resolve(r))));
  }

  /** A new exec supervisor (`binary`), with a stdin socket or not (and a runtime copy); its sockets come on the IPC channel. */
  supervise(binary: string, stdin: boolean, runtimeCopy: string): Promise<LaunchedSupervisor> {
    let id = 0;
    // A reply on stdout means it was refused (no channel, too many supervisors), or berth-launch is gone.
    const reply = (r: Reply | Error): void =>
      this.handover.fail(id, internal(r instanceof Error ? r.message : `berth-launch cannot start ${binary}: ${errnoNames.get(r.value) ?? r.value}`));
    id = this.send(['supervise', '', stdin ? '1' : '0', binary, runtimeCopy], undefined, reply);
    return this.handover.expect(id).finally(() => {
      // Success has no reply on stdout: the request is over when the channel told.
      this.pending.delete(id);
      if (this.pending.size === 0) this.setRef(false);
    });
  }

  /** Writes one request; `done` gets its reply. The request's id. */
  private send(fields: readonly string[], data: Buffer | undefined, done: (r: Reply | Error) => void): number {
    const child = this.child ?? this.start();
    const id = this.nextId++;
    const body = Buffer.concat([Buffer.from(fields.map((f, i) => `${i === 1 ? id : f}\0`).join(''), 'utf8'), data ?? Buffer.alloc(0)]);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    this.pending.set(id, done);
    this.setRef(true);
    child.stdin?.write(Buffer.concat([header, body]));
    return id;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Lets the launcher exit (stdin EOF); running children are left alone. */
  close(): void {
    this.child?.stdin?.end();
  }
}

let launcher: Launcher | undefined;

/** Makes this process launch through berth-launch at `binary` from now on (berthd's start-up); undefined or not executable: child_process. */
export function useLauncher(binary: string | undefined): void {
  launcher?.close();
  launcher = binary && isExecutable(binary) ? new Launcher(binary) : undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The running berth-launch's pid (none before the first request, or after it exited). */
export function launcherPid(): number | undefined {
  return launcher?.pid;
}

/** Whether requests go through berth-launch. */
export function launcherInUse(): boolean {
  return launcher !== undefined;
}

/**
 * Starts a berth-exec supervisor (`binary`, EXEC.md) waiting for its RUN frame; rejects with a typed error.
 * `runtimeCopy`: the absolute path of a runc binary that berth-launch gives the supervisor as a sealed memfd
 * copy to exec (src/launch/runtime_copy.c); only for runc, whose runc init then skips cloning itself. Without
 * berth-launch there is no copy: runc protects itself, at the cost of its own clone per call.
 */
export function launchSupervisor(binary: string, stdin: boolean, runtimeCopy = ''): Promise<LaunchedSupervisor> {
  return launcher ? launcher.supervise(binary, stdin, runtimeCopy) : superviseDirect(binary, stdin);
}

/** Runs `file` with `args` to completion; rejects (as child_process's 'error') only when it cannot be started. */
export async function launch(file: string, args: readonly string[], opts: LaunchOptions = {}): Promise<LaunchResult> {
  if (!launcher) return launchDirect(file, args, opts);
  const env = opts.env ?? process.env;
  const envList = Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined).map(([k, v]) => `${k}=${v}`);
  const flags = (opts.detached ? FLAG_SETSID : 0) | (opts.readyFd ? FLAG_READY_FD : 0) | (opts.input !== undefined ? FLAG_STDIN : 0);
  const reply = await launcher.request(
    [
      'run',
      '',
      String(opts.timeoutMs ?? 0),
      String(os.constants.signals[opts.killSignal ?? 'SIGTERM']),
      String(flags),
      opts.cwd ?? '',
      String(opts.stdoutCap ?? DEFAULT_CAPS.stdout),
      String(opts.stderrCap ?? DEFAULT_CAPS.stderr),
      String(opts.readyCap ?? DEFAULT_CAPS.ready),
      opts.runtimeCopy ?? '',
      file,
      String(args.length),
      ...args,
      String(envList.length),
      ...envList,
    ],
    opts.input === undefined ? undefined : Buffer.from(opts.input),
  );
  if (reply.kind === 'error') throw spawnError(file, args, reply.value);
  const [stdout, stderr, ready] = reply.streams;
  return {
    code: reply.kind === 'exit' ? reply.value : null,
    signal: reply.kind === 'signal' ? (signalNames.get(reply.value) ?? null) : null,
    timedOut: reply.timedOut,
    stdout,
    stderr,
    ready,
  };
}

/** Keeps the first `cap` bytes of a stream and reads (drops) the rest. */
function collect(stream: Readable | null | undefined, cap: number): () => Buffer {
  const chunks: Buffer[] = [];
  let kept = 0;
  stream?.on('data', (c: Buffer) => {
    const room = cap - kept;
    if (room <= 0) return;
    const part = c.length > room ? c.subarray(0, room) : c;
    chunks.push(part);
    kept += part.length;
  });
  stream?.on('error', () => undefined);
  return () => Buffer.concat(chunks, kept);
}

function launchDirect(file: string, args: readonly string[], opts: LaunchOptions): Promise<LaunchResult> {
  return new Promise((resolve, reject) => {
    const stdio: Array<'pipe' | 'ignore'> = [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    if (opts.readyFd) stdio.push('pipe');
    const child = spawn(file, [...args], { stdio, env: opts.env ?? process.env, cwd: opts.cwd, detached: opts.detached ?? false });
    const stdout = collect(child.stdout, opts.stdoutCap ?? DEFAULT_CAPS.stdout);
    const stderr = collect(child.stderr, opts.stderrCap ?? DEFAULT_CAPS.stderr);
    const ready = collect(child.stdio[3] as Readable | undefined, opts.readyCap ?? DEFAULT_CAPS.ready);
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill(opts.killSignal ?? 'SIGTERM');
        }, opts.timeoutMs)
      : undefined;
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // a child that does not read its input: its exit status tells
      child.stdin.end(opts.input);
    }
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout: stdout(), stderr: stderr(), ready: ready() });
    });
  });
}

/** mount(2) through berth-launch; relative paths in `data` (overlay lower dirs) resolve against `cwd`. */
export async function mountSyscall(source: string, fstype: string, flags: number, data: string, target: string, cwd: string): Promise<void> {
  if (!launcher) throw new Error('mountSyscall needs berth-launch (useLauncher)');
  const reply = await launcher.request(['mount', '', source, fstype, String(flags), data, target, cwd]);
  if (reply.kind === 'error') throw syscallError('mount', target, reply.value);
}

/** umount2(2) through berth-launch. */
export async function umountSyscall(target: string, flags = 0): Promise<void> {
  if (!launcher) throw new Error('umountSyscall needs berth-launch (useLauncher)');
  const reply = await launcher.request(['umount', '', String(flags), target]);
  if (reply.kind === 'error') throw syscallError('umount', target, reply.value);
}
