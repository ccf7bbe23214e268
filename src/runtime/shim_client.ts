// Client for berth-shim, the per-container native process (src/shim/main.c).
// berthd starts one shim per container with ShimClient.spawn() and talks to it
// over <stateDir>/ctl.sock using the line protocol in src/shim/PROTOCOL.md.
// After a berthd restart, ShimClient.connect(stateDir) finds the shim again.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough, Writable, type Readable } from 'node:stream';
import {
  BerthError,
  deadlineExceeded,
  errnoCode,
  errorMessage,
  failedPrecondition,
  internal,
  invalidArgument,
  notFound,
  unavailable,
} from '../errors';
import { launch } from '../util/launch';
import { sparesOrders, type ShimSpares } from './shim_spare';

/** Files the shim keeps in its state directory. */
export const SHIM_FILES = {
  controlSocket: 'ctl.sock',
  consoleSocket: 'console.sock',
  containerPid: 'container.pid',
  shimPid: 'shim.pid',
  exit: 'exit',
  runtimeLog: 'runtime.log',
  shimLog: 'shim.log',
} as const;

/** Longest unix socket path the kernel accepts (sun_path minus the NUL). */
const MAX_SOCKET_PATH = 107;
const FRAME_HEADER = 5;
const FRAME_MAX = 32768;
const enum FrameType {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Resize = 3,
  StdinEof = 4,
  Exit = 5,
}

export interface ShimSpawnOptions {
  id: string;
  bundle: string;
  /** Directory for the shim's sockets and files; created 0700 if missing. */
  stateDir: string;
  /** The OCI runtime's --root. */
  runtimeRoot: string;
  /** OCI runtime binary (default: runc from PATH). */
  runtime?: string;
  /** Exec `runtime` (an absolute path) from a sealed memfd copy berth-launch makes (runc only: sealed_copy.ts). */
  sealedCopy?: boolean;
  /** Extra global runtime arguments, placed before --root (e.g. --systemd-cgroup). */
  runtimeArgs?: string[];
  /** CRI log file for the container's output; omitted: output is only served to attach. */
  logPath?: string;
  /** Lines longer than this become partial (P) records; default 16384. */
  logMaxLine?: number;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  /** The container's memory cgroup (absolute dir or path relative to the hierarchy), for OOM detection. */
  cgroupPaths?: string[];
  /** Cgroup directories to move the shim into (outside berthd's cgroup). */
  shimCgroups?: string[];
  /** Path of the berth-shim binary; default shimBinaryPath(). */
  shimBinary?: string;
  /** Spare shims to take one from (ContainerRuntime's); none: the shim is started now. Not with `env`. */
  spares?: ShimSpares;
  /** How long runtime create may take; default 60s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface ShimExit {
  /** Container init's pid. */
  pid: number;
  /** Exit status, or 128+signal when killed by a signal. */
  exitCode: number;
  /** Terminating signal, 0 if it exited normally. */
  signal: number;
  /** Nanoseconds since the epoch, as an exact decimal string. */
  exitedAtNs: string;
  oomKilled: boolean;
}

export interface ShimState {
  pid: number;
  /** 'exiting': init has exited, output is being drained and the exit recorded. */
  status: 'running' | 'exiting' | 'exited';
  exit?: ShimExit;
}

export interface ShimAttachOptions {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}

export interface ShimAttach {
  /** Ending it closes the container's stdin only when the shim runs with --stdin-once. */
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  resize(width: number, height: number): void;
  /** The container's exit, or null if the stream ended without one (detached, shim gone). */
  exit: Promise<ShimExit | null>;
  /** Detaches; the container keeps running. */
  close(): void;
}

/** The shim binary: $BERTH_SHIM, else <repo>/build/berth-shim next to dist/. */
export function shimBinaryPath(): string {
  const fromEnv = process.env.BERTH_SHIM;
  if (fromEnv) return fromEnv;
  return path.resolve(__dirname, '..', '..', '..', 'build', 'berth-shim');
}

function parseExit(text: string): ShimExit {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw internal(`malformed shim exit record: ${JSON.stringify(text)}`, err);
  }
  if (typeof v !== 'object' || v === null) throw internal(`malformed shim exit record: ${text}`);
  const o = v as Record<string, unknown>;
  if (
    typeof o.pid !== 'number' ||
    typeof o.exitCode !== 'number' ||
    typeof o.signal !== 'number' ||
    typeof o.exitedAtNs !== 'string' ||
    !/^\d+$/.test(o.exitedAtNs) ||
    typeof o.oomKilled !== 'boolean'
  ) {
    throw internal(`malformed shim exit record: ${text}`);
  }
  return { pid: o.pid, exitCode: o.exitCode, signal: o.signal, exitedAtNs: o.exitedAtNs, oomKilled: o.oomKilled };
}

function parseState(text: string): ShimState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw internal(`malformed shim state: ${JSON.stringify(text)}`, err);
  }
  const o = v as Record<string, unknown>;
  if (typeof o?.pid !== 'number' || (o.status !== 'running' && o.status !== 'exiting' && o.status !== 'exited')) {
    throw internal(`malformed shim state: ${text}`);
  }
  const state: ShimState = { pid: o.pid, status: o.status };
  if (o.exit !== undefined) state.exit = parseExit(JSON.stringify(o.exit));
  return state;
}

/** Reads <stateDir>/exit; null if the container has not exited (or the shim never recorded it). */
export async function readExitFile(stateDir: string): Promise<ShimExit | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(stateDir, SHIM_FILES.exit), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw internal(`reading shim exit file in ${stateDir}: ${errorMessage(err)}`, err);
  }
  return parseExit(text.trim());
}

async function readPidFile(file: string): Promise<number | null> {
  try {
    const n = Number.parseInt(await fs.promises.readFile(file, 'utf8'), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw internal(`reading ${file}: ${errorMessage(err)}`, err);
  }
}

function checkSocketPath(p: string): void {
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    throw invalidArgument(`shim socket path ${p} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter state dir`);
  }
}

/** Reads one '\n'-terminated line from a socket; rest is what followed it. */
function readLine(sock: net.Socket, timeoutMs: number | undefined): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0) {
        cleanup();
        sock.pause();
        resolve({ line: buf.subarray(0, nl).toString('utf8'), rest: buf.subarray(nl + 1) });
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(unavailable('shim closed the connection without replying'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(unavailable(`shim connection: ${errorMessage(err)}`, err));
    };
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        cleanup();
        reject(deadlineExceeded(`shim did not reply within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('close', onEnd);
    sock.on('error', onError);
    sock.resume();
  });
}

/**
 * Ends a shim that is still running in `stateDir` after its container was
 * deleted (it normally leaves by itself): waits `graceMs` for it, then calls
 * `kill` (default: SIGKILL to the shim) and waits up to `waitMs` in all for it
 * to be gone. The shim is recognised by its command line naming `stateDir`,
 * never by a pid alone, so a reused pid is left alone.
 */
export async function stopLeftoverShim(
  stateDir: string,
  opts: { graceMs: number; waitMs: number; kill?: (pid: number) => Promise<void> | void },
): Promise<void> {
  const pid = await shimPidOf(stateDir);
  if (pid === undefined) return;
  const kill = opts.kill ?? ((p: number) => process.kill(p, 'SIGKILL'));
  let killed = false;
  for (const start = Date.now(); Date.now() - start < opts.waitMs; ) {
    const cmd = await fs.promises.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmd.includes('berth-shim') || !cmd.includes(stateDir)) return;
    if (!killed && Date.now() - start >= opts.graceMs) {
      killed = true;
      try {
        await kill(pid);
      } catch {
        // gone meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 100).unref());
  }
}

/** The pid in the shim's pid file, if it names one. */
async function shimPidOf(stateDir: string): Promise<number | undefined> {
  const pid = Number((await fs.promises.readFile(path.join(stateDir, SHIM_FILES.shimPid), 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** How many of the shims of `stateDirs` run: pid file, then a command line naming berth-shim and that directory. */
export async function liveShimCount(stateDirs: string[]): Promise<number> {
  const alive = await Promise.all(
    stateDirs.map(async (dir) => {
      const pid = await shimPidOf(dir);
      if (pid === undefined) return false;
      const cmd = await fs.promises.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      return cmd.includes('berth-shim') && cmd.includes(dir);
    }),
  );
  return alive.filter(Boolean).length;
}

export class ShimClient {
  private constructor(
    readonly stateDir: string,
    /** Container init's pid, as written by the runtime. */
    readonly containerPid: number,
    /** The shim's own pid (from shim.pid), or null if unknown. */
    readonly shimPid: number | null,
  ) {}

  get socketPath(): string {
    return path.join(this.stateDir, SHIM_FILES.controlSocket);
  }

  /**
   * Starts a shim, which runs `<runtime> create`; resolves once the container
   * is created (status "created", waiting for `runtime start`). Fails with
   * the runtime's error message if create fails.
   */
  static async spawn(opts: ShimSpawnOptions): Promise<ShimClient> {
    if (opts.stdinOnce && !opts.stdin) throw invalidArgument('stdinOnce requires stdin');
    checkSocketPath(path.join(opts.stateDir, SHIM_FILES.controlSocket));
    const bin = opts.shimBinary ?? shimBinaryPath();
    try {
      await fs.promises.mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw failedPrecondition(`creating shim state dir ${opts.stateDir}: ${errorMessage(err)}`, err);
    }
    const args = [
      '--id', opts.id,
      '--bundle', opts.bundle,
      '--state-dir', opts.stateDir,
      '--runtime-root', opts.runtimeRoot,
    ];
    if (opts.runtime) args.push('--runtime', opts.runtime);
    for (const a of opts.runtimeArgs ?? []) args.push('--runtime-arg', a);
    if (opts.logPath) args.push('--log-path', opts.logPath);
    if (opts.logMaxLine !== undefined) args.push('--log-max-line', String(opts.logMaxLine));
    if (opts.stdin) args.push('--stdin');
    if (opts.stdinOnce) args.push('--stdin-once');
    if (opts.tty) args.push('--tty');
    for (const c of opts.cgroupPaths ?? []) args.push('--cgroup-path', c);
    for (const c of opts.shimCgroups ?? []) args.push('--shim-cgroup', c);

    const timeoutMs = opts.timeoutMs ?? 60_000;
    let line: string;
    let stderrText: string;
    // A spare shim started ahead of need takes the same command line as its orders.
    const runtimeCopy = opts.sealedCopy ? opts.runtime : undefined;
    const spare = opts.env === undefined ? opts.spares?.take(bin, runtimeCopy) : undefined;
    if (spare) {
      ({ line, stderrText } = await ShimClient.order(spare, args, opts.id, timeoutMs));
    } else {
      ({ line, stderrText } = await ShimClient.launchShim(bin, args, opts, timeoutMs));
    }
    line = line.trim();
    if (line.startsWith('OK ')) {
      const [pid, shimPid] = line.slice(3).split(' ').map((w) => Number.parseInt(w, 10));
      if (!Number.isInteger(pid) || pid <= 0) throw internal(`berth-shim sent a bad ready line: ${line}`);
      // A shim from before the line carried its own pid: read its pid file.
      if (Number.isInteger(shimPid) && shimPid > 0) return new ShimClient(opts.stateDir, pid, shimPid);
      return new ShimClient(opts.stateDir, pid, await readPidFile(path.join(opts.stateDir, SHIM_FILES.shimPid)));
    }
    if (line.startsWith('ERR ')) throw failedPrecondition(`creating container ${opts.id}: ${line.slice(4)}`);
    const why = stderrText.trim() || 'no output';
    throw internal(`berth-shim for ${opts.id} exited before reporting readiness: ${why}`);
  }

  /** Starts a shim through berth-launch; its ready line and stderr. */
  private static async launchShim(bin: string, args: string[], opts: ShimSpawnOptions, timeoutMs: number): Promise<{ line: string; stderrText: string }> {
    // The shim detaches (its first process exits at once) and closes fd 3
    // once it reported; its stderr is complete by then.
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        launch(bin, [...args, '--ready-fd', '3'], {
          detached: true,
          readyFd: true,
          env: opts.env ?? process.env,
          stdoutCap: 0,
          stderrCap: 4096,
          runtimeCopy: opts.sealedCopy ? opts.runtime : undefined,
        }),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            reject(deadlineExceeded(`berth-shim for ${opts.id}: runtime create did not finish within ${timeoutMs} ms`));
          }, timeoutMs);
        }),
      ]);
      return { line: r.ready.toString('utf8'), stderrText: r.stderr.toString('utf8') };
    } catch (err) {
      if (err instanceof BerthError) throw err;
      // Found out when it cannot be started rather than checked before every create.
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'EACCES') throw failedPrecondition(`berth-shim binary ${bin} is missing; build it with make -C src/shim`, err);
      throw internal(`spawning berth-shim ${bin}: ${errorMessage(err)}`, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Gives a spare shim its orders; its ready line (empty when it closed the connection without one). */
  private static async order(spare: net.Socket, args: string[], id: string, timeoutMs: number): Promise<{ line: string; stderrText: string }> {
    try {
      spare.write(sparesOrders(args));
      return { line: (await readLine(spare, timeoutMs)).line, stderrText: '' };
    } catch (err) {
      if (err instanceof BerthError && err.kind === 'DEADLINE_EXCEEDED') {
        throw deadlineExceeded(`berth-shim for ${id}: runtime create did not finish within ${timeoutMs} ms`, err);
      }
      return { line: '', stderrText: `the spare shim left without reporting (${errorMessage(err)})` };
    } finally {
      spare.destroy();
    }
  }

  /** Finds the shim of an existing container (e.g. after berthd restarted). */
  static async connect(stateDir: string): Promise<ShimClient> {
    const containerPid = await readPidFile(path.join(stateDir, SHIM_FILES.containerPid));
    if (containerPid === null) throw notFound(`no shim state in ${stateDir}`);
    const shimPid = await readPidFile(path.join(stateDir, SHIM_FILES.shimPid));
    return new ShimClient(stateDir, containerPid, shimPid);
  }

  /** Reads <stateDir>/exit; null while the container runs. */
  readExitFile(): Promise<ShimExit | null> {
    return readExitFile(this.stateDir);
  }

  private openSocket(): Promise<net.Socket> {
    checkSocketPath(this.socketPath);
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.socketPath);
      const onError = (err: Error): void => {
        sock.destroy();
        const code = errnoCode(err);
        if (code === 'ENOENT' || code === 'ECONNREFUSED') {
          reject(failedPrecondition(`the shim in ${this.stateDir} is not running`, err));
        } else {
          reject(unavailable(`connecting to shim ${this.socketPath}: ${errorMessage(err)}`, err));
        }
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
  }

  /** Sends one command and returns the text after "OK" (ERR becomes a typed error). */
  private async request(command: string, timeoutMs: number | undefined = 10_000): Promise<string> {
    const sock = await this.openSocket();
    try {
      sock.write(`${command}\n`);
      const { line } = await readLine(sock, timeoutMs);
      if (line === 'OK') return '';
      if (line.startsWith('OK ')) return line.slice(3);
      if (line.startsWith('ERR ')) throw failedPrecondition(`shim ${command.split(' ')[0]}: ${line.slice(4)}`);
      throw internal(`unexpected shim reply: ${JSON.stringify(line)}`);
    } finally {
      sock.destroy();
    }
  }

  /**
   * Starts a created runc container as `runc start` would, from inside the
   * shim (src/shim/release.c): no runtime process. A shim from before START
   * existed answers "unknown command" (an INVALID_ARGUMENT here).
   */
  async start(): Promise<void> {
    try {
      await this.request('START', 15_000);
    } catch (err) {
      if (err instanceof BerthError && /^shim START: unknown command/.test(err.message)) {
        throw invalidArgument('this berth-shim has no START command', err);
      }
      // A container whose init died before START: its shim records the exit
      // and leaves, so the request may meet a closed or reset socket instead
      // of the shim's answer. The exit file tells which.
      const answered = err instanceof BerthError && err.message.startsWith('shim START:');
      if (!answered && (await this.readExitFile().catch(() => null))) {
        throw failedPrecondition('shim START: container process is already dead (it exited before it was started)', err);
      }
      throw err;
    }
  }

  /** Reopens the log file (CRI ReopenContainerLog, after the kubelet rotated it). */
  async reopenLog(): Promise<void> {
    await this.request('REOPEN');
  }

  /** Sets the terminal size (tty containers only). */
  async resize(width: number, height: number): Promise<void> {
    checkSize(width, height);
    await this.request(`RESIZE ${width} ${height}`);
  }

  /** Closes the container's stdin (after buffered input is written). */
  async closeStdin(): Promise<void> {
    await this.request('CLOSE_STDIN');
  }

  /** Pid and status; falls back to the exit file once the shim is gone. */
  async state(): Promise<ShimState> {
    try {
      return parseState(await this.request('STATE'));
    } catch (err) {
      if (!(err instanceof BerthError) || err.kind !== 'FAILED_PRECONDITION') throw err;
      const exit = await this.readExitFile();
      if (exit) return { pid: exit.pid, status: 'exited', exit };
      throw err;
    }
  }

  /** True if the shim answers on its control socket. */
  async isAlive(timeoutMs = 2000): Promise<boolean> {
    try {
      await this.request('STATE', timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Resolves with the container's exit once the shim recorded it durably.
   * If the shim is gone, the exit file answers; a shim that died without
   * recording an exit is an INTERNAL error.
   */
  async waitExit(): Promise<ShimExit> {
    let sock: net.Socket | undefined;
    try {
      sock = await this.openSocket();
      sock.write('WAIT\n');
      const { line } = await readLine(sock, undefined);
      if (line.startsWith('OK ')) return parseExit(line.slice(3));
      throw internal(`unexpected shim reply to WAIT: ${JSON.stringify(line)}`);
    } catch (err) {
      if (err instanceof BerthError && err.kind === 'INTERNAL') throw err;
      const exit = await this.readExitFile();
      if (exit) return exit;
      throw internal(`shim in ${this.stateDir} is gone without recording the container's exit`, err);
    } finally {
      sock?.destroy();
    }
  }

  /**
   * Resolves once the shim has recorded the exit and closed its connections,
   * which it does after removing its pid file and socket, just before it
   * exits: the event teardown awaits instead of polling /proc. Resolves at
   * once when the shim is already gone.
   */
  async waitLeft(): Promise<void> {
    let sock: net.Socket;
    try {
      sock = await this.openSocket();
    } catch {
      return;
    }
    try {
      await new Promise<void>((resolve) => {
        sock.once('close', () => resolve());
        sock.on('data', () => undefined);
        sock.on('error', () => undefined);
        sock.write('WAIT\n');
      });
    } finally {
      sock.destroy();
    }
  }

  /** Attaches to the container's stdio (output from now on; earlier output is in the log). */
  async attach(opts: ShimAttachOptions = { stdin: true, stdout: true, stderr: true }): Promise<ShimAttach> {
    const words = (['stdin', 'stdout', 'stderr'] as const).filter((w) => opts[w]);
    if (words.length === 0) throw invalidArgument('attach needs at least one of stdin, stdout, stderr');
    const sock = await this.openSocket();
    let first: { line: string; rest: Buffer };
    try {
      sock.write(`ATTACH ${words.join(' ')}\n`);
      first = await readLine(sock, 10_000);
    } catch (err) {
      sock.destroy();
      throw err;
    }
    if (first.line !== 'OK') {
      sock.destroy();
      if (first.line.startsWith('ERR ')) throw failedPrecondition(`attach: ${first.line.slice(4)}`);
      throw internal(`unexpected shim reply to ATTACH: ${JSON.stringify(first.line)}`);
    }
    return new AttachSession(sock, first.rest, opts);
  }
}

function checkSize(width: number, height: number): void {
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffff;
  if (!ok(width) || !ok(height)) throw invalidArgument(`terminal size ${width}x${height} out of range (0-65535)`);
}

function frame(type: FrameType, payload: Buffer): Buffer {
  const hdr = Buffer.alloc(FRAME_HEADER);
  hdr.writeUInt8(type, 0);
  hdr.writeUInt32BE(payload.length, 1);
  return Buffer.concat([hdr, payload]);
}

/** An ATTACH connection: demultiplexes frames into streams, with backpressure. */
class AttachSession implements ShimAttach {
  readonly stdin: Writable | null;
  readonly stdout: PassThrough | null;
  readonly stderr: PassThrough | null;
  readonly exit: Promise<ShimExit | null>;
  private pending: Buffer;
  private exitValue: ShimExit | null = null;

  constructor(
    private readonly sock: net.Socket,
    rest: Buffer,
    opts: ShimAttachOptions,
  ) {
    this.pending = rest;
    this.stdout = opts.stdout ? new PassThrough() : null;
    this.stderr = opts.stderr ? new PassThrough() : null;
    this.stdin = opts.stdin
      ? new Writable({
          write: (chunk: Buffer, _enc, cb) => {
            const parts: Buffer[] = [];
            for (let off = 0; off < chunk.length; off += FRAME_MAX) {
              parts.push(frame(FrameType.Stdin, chunk.subarray(off, off + FRAME_MAX)));
            }
            if (sock.destroyed) return cb();
            sock.write(Buffer.concat(parts), () => cb());
          },
          final: (cb) => {
            if (sock.destroyed) return cb();
            sock.write(frame(FrameType.StdinEof, Buffer.alloc(0)), () => cb());
          },
        })
      : null;
    this.stdin?.on('error', () => undefined);
    for (const out of [this.stdout, this.stderr]) {
      out?.on('drain', () => {
        if (!this.outputBlocked()) sock.resume();
      });
    }
    this.exit = new Promise((resolve) => {
      sock.on('close', () => {
        this.stdout?.end();
        this.stderr?.end();
        this.stdin?.destroy();
        resolve(this.exitValue);
      });
    });
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    this.onData(Buffer.alloc(0));
    sock.resume();
  }

  private outputBlocked(): boolean {
    return !!(this.stdout?.writableNeedDrain || this.stderr?.writableNeedDrain);
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= FRAME_HEADER) {
      const type = this.pending.readUInt8(0);
      const len = this.pending.readUInt32BE(1);
      if (len > FRAME_MAX + 1024) {
        this.sock.destroy();
        return;
      }
      if (this.pending.length < FRAME_HEADER + len) break;
      const payload = this.pending.subarray(FRAME_HEADER, FRAME_HEADER + len);
      this.pending = this.pending.subarray(FRAME_HEADER + len);
      if (type === FrameType.Stdout) this.stdout?.write(payload);
      else if (type === FrameType.Stderr) this.stderr?.write(payload);
      else if (type === FrameType.Exit) {
        try {
          this.exitValue = parseExit(payload.toString('utf8'));
        } catch {
          this.exitValue = null;
        }
      }
    }
    if (this.outputBlocked()) this.sock.pause();
  }

  resize(width: number, height: number): void {
    checkSize(width, height);
    const p = Buffer.alloc(4);
    p.writeUInt16BE(width, 0);
    p.writeUInt16BE(height, 2);
    if (!this.sock.destroyed) this.sock.write(frame(FrameType.Resize, p));
  }

  close(): void {
    this.sock.destroy();
  }
}
