// Drives a runc-compatible OCI runtime binary for one runtime handler: start,
// kill, delete, state, update and exec (ExecSync). Container creation is the
// shim's job (it runs `<runtime> create`). Every call passes `--root` and a
// JSON `--log` file, so runtime errors never mix with a process's own output
// and come back as typed errors carrying the runtime's message.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import {
  BerthError,
  deadlineExceeded,
  errorMessage,
  failedPrecondition,
  internal,
  notFound,
} from '../errors';
import { startSupervisedExec, type SupervisedExec, type SupervisorPool } from './exec_supervisor';
import type { RuntimeHandler } from './handlers';
import { runsFromSealedCopy } from './sealed_copy';
import type { OciLinuxResources, OciProcess, OciSpec } from './spec/oci_types';
import { writeFileAtomic } from '../util/atomic_file';
import { launch } from '../util/launch';

export type OciStatus = 'creating' | 'created' | 'running' | 'stopped' | 'paused';

/** `runc state` output. */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: OciStatus;
  bundle: string;
  rootfs?: string;
  created?: string;
  owner?: string;
  annotations?: Record<string, string>;
}

export interface ExecOptions {
  /** 0 or absent: no timeout. */
  timeoutMs?: number;
  /** Bytes of stdout kept; the rest is read and discarded. Default 16 MiB. */
  stdoutCap?: number;
  stderrCap?: number;
  stdin?: Buffer | string;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

export const EXEC_OUTPUT_CAP = 16 * 1024 * 1024;
/** How long to keep reading pipes after the exec'd process is gone (a background child may hold them). */
const PIPE_DRAIN_GRACE_MS = 300;
/** Output of runc's own commands (state JSON, ...) is small; more is cut. */
const COMMAND_OUTPUT_CAP = 4 * 1024 * 1024;

/** Keeps the first `cap` bytes of a stream and drains (discards) the rest, so the writer never blocks. */
class CappedCollector {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.kept;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (part.length < chunk.length) this.truncated = true;
    this.chunks.push(part);
    this.kept += part.length;
  }
  buffer(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }
}

interface LogEntry {
  level?: string;
  msg?: string;
}

/** The error-level messages among a runc JSON log's lines (a line that is not JSON is kept as it is). */
function runtimeLogErrors(lines: string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as LogEntry;
      if ((e.level === 'error' || e.level === 'fatal') && e.msg) out.push(e.msg);
    } catch {
      out.push(line.trim());
    }
  }
  return out;
}

/**
 * The error of a runtime command logging to stderr: its JSON error entries
 * (runc prints the same error again as plain text after its log entry), or
 * else the plain text.
 */
export function stderrErrors(stderr: string): string {
  const lines = stderr.split('\n');
  const logged = runtimeLogErrors(lines.filter((l) => l.startsWith('{')));
  return logged.length > 0 ? logged.join('; ') : stderr.trim();
}

/** Maps a runtime's error message to the berth error kind a CRI caller expects. */
export function runtimeError(op: string, id: string, message: string): BerthError {
  const text = `${op} ${id}: ${message}`;
  if (/does not exist|not exist|no such container/i.test(message)) return notFound(`container ${id} not found in the OCI runtime (${text})`);
  if (/not running|is stopped|cannot exec in a stopped|container is paused/i.test(message)) return failedPrecondition(text);
  return internal(text);
}

function closeStream(s: Readable | null): void {
  if (s && !s.destroyed) s.destroy();
}

export class OciRuntime {
  constructor(
    private readonly handler: Pick<RuntimeHandler, 'name' | 'binary' | 'root' | 'tmpDir' | 'globalArgs'> & { version?: string },
    /** Where exec supervisors come from (ContainerRuntime keeps one pool for all calls). */
    private readonly supervisors: SupervisorPool,
  ) {}

  get name(): string {
    return this.handler.name;
  }

  /** Writes `<dir>/config.json` atomically (temp file, rename), creating `dir`. */
  static async writeBundle(dir: string, spec: OciSpec): Promise<string> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o711 });
    const target = path.join(dir, 'config.json');
    // The bundle is volatile state (gone at reboot): neither it nor its directory needs an fsync.
    await writeFileAtomic(target, JSON.stringify(spec), { syncDir: false, syncFile: false });
    return target;
  }


  /** A private (0700) directory for one call's files: log, process.json, pid file. Not under --root, which the runtime lists. */
  private async scratch(): Promise<string> {
    return fsp.mkdtemp(path.join(this.handler.tmpDir, `${this.handler.name}-`));
  }

  /**
   * Runs one runtime command; resolves stdout, throws a typed error with the
   * runtime's message. With no --log the runtime logs to stderr (JSON), which
   * is kept anyway: no log file, so no scratch directory to make and remove.
   */
  private async run(op: string, id: string, args: string[]): Promise<string> {
    try {
      const r = await launch(this.handler.binary, [...(this.handler.globalArgs ?? []), '--root', this.handler.root, '--log-format', 'json', ...args], {
        stdoutCap: COMMAND_OUTPUT_CAP,
        stderrCap: 64 * 1024,
      });
      const { code, signal } = r;
      if (code === 0) return r.stdout.toString('utf8');
      const message = stderrErrors(r.stderr.toString('utf8')) || (signal ? `killed by ${signal}` : `exited with status ${String(code)}`);
      throw runtimeError(`${this.handler.name} ${op}`, id, message);
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw internal(`${this.handler.name} ${op} ${id}: cannot run ${this.handler.binary}: ${errorMessage(err)}`, err);
    }
  }

  async start(id: string): Promise<void> {
    await this.run('start', id, ['start', id]);
  }

  /** Sends `signal` (name such as "SIGTERM", or number) to the init process, or to all with `all`. */
  async kill(id: string, signal: string | number = 'SIGTERM', all = false): Promise<void> {
    await this.run('kill', id, ['kill', ...(all ? ['--all'] : []), id, String(signal)]);
  }

  async delete(id: string, force = false): Promise<void> {
    await this.run('delete', id, ['delete', ...(force ? ['--force'] : []), id]);
  }

  async state(id: string): Promise<OciState> {
    const out = await this.run('state', id, ['state', id]);
    try {
      return JSON.parse(out) as OciState;
    } catch (err) {
      throw internal(`${this.handler.name} state ${id}: unparsable output: ${out.slice(0, 200)}`, err);
    }
  }

  /** CRIU images of the running container into `imageDir`; the container keeps running. */
  async checkpoint(id: string, imageDir: string, workDir: string): Promise<void> {
    await this.run('checkpoint', id, ['checkpoint', '--image-path', imageDir, '--work-path', workDir, '--leave-running', id]);
  }

  /** Applies new cgroup limits (`update --resources FILE`). */
  async update(id: string, resources: OciLinuxResources): Promise<void> {
    const dir = await this.scratch();
    try {
      const file = path.join(dir, 'resources.json');
      await fsp.writeFile(file, JSON.stringify(resources), { mode: 0o600 });
      await this.run('update', id, ['update', '--resources', file, id]);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Starts `process` in the running container under the berth-exec
   * supervisor (src/shim/EXEC.md) and returns its streams and exit. The
   * supervisor keeps its files in a scratch directory of its own under
   * tmpDir and removes it before it exits.
   */
  startExec(id: string, process: OciProcess, opts: { tty: boolean; stdin: boolean }): Promise<SupervisedExec> {
    return startSupervisedExec(
      this.supervisors,
      {
        runtime: this.handler.binary,
        sealedCopy: runsFromSealedCopy(this.handler),
        runtimeRoot: this.handler.root,
        containerId: id,
        tmpDir: this.handler.tmpDir,
        tty: opts.tty,
        stdin: opts.stdin,
        runtimeErrors: runtimeLogErrors,
        toError: (message) => runtimeError(`${this.handler.name} exec`, id, message),
      },
      process,
    );
  }

  /**
   * Runs `process` in the container and waits for it (ExecSync). stdout and
   * stderr are kept apart, each capped; on timeout the process is killed and a
   * DEADLINE_EXCEEDED error is thrown.
   *
   * A foreground `runc exec` copies the process's output through its own pipes
   * and does not exit until they reach EOF, so a background child left behind
   * (`sh -c 'daemon & exit 0'`) would hold it forever. Instead the runtime runs
   * detached under berth-exec, a child subreaper that inherits and reaps the
   * process and reports its status; the process writes straight into our
   * pipes. Once it is reaped the pipes are drained for a short grace period only.
   */
  async exec(id: string, process: OciProcess, opts: ExecOptions = {}): Promise<ExecResult> {
    const ex = await this.startExec(id, process, { tty: false, stdin: opts.stdin !== undefined });
    const stdout = new CappedCollector(opts.stdoutCap ?? EXEC_OUTPUT_CAP);
    const stderr = new CappedCollector(opts.stderrCap ?? EXEC_OUTPUT_CAP);
    ex.stdout.on('data', (c: Buffer) => stdout.push(c));
    ex.stderr.on('data', (c: Buffer) => stderr.push(c));
    const pipesClosed = Promise.all([
      new Promise<void>((r) => ex.stdout.once('close', () => r())),
      new Promise<void>((r) => ex.stderr.once('close', () => r())),
    ]);
    if (opts.stdin !== undefined && ex.stdin) ex.stdin.end(opts.stdin);
    let timedOut = false;
    const timer =
      opts.timeoutMs && opts.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            ex.kill();
          }, opts.timeoutMs)
        : undefined;
    let exitCode: number;
    try {
      exitCode = await ex.exited;
    } catch (err) {
      if (!timedOut) throw err;
      exitCode = 137;
    } finally {
      if (timer) clearTimeout(timer);
      // A background child may hold the pipes: drain briefly, then stop
      // reading (it gets EPIPE from then on).
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([pipesClosed, new Promise<void>((r) => (grace = setTimeout(r, PIPE_DRAIN_GRACE_MS)))]);
      if (grace) clearTimeout(grace);
      closeStream(ex.stdout);
      closeStream(ex.stderr);
    }
    if (timedOut) {
      throw deadlineExceeded(
        `exec in container ${id} (${process.args.join(' ')}) did not finish within ${String(opts.timeoutMs)} ms and was killed`,
      );
    }
    return {
      exitCode,
      stdout: stdout.buffer(),
      stderr: stderr.buffer(),
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
    };
  }
}
