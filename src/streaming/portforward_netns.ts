// The real port-forward backend: a TCP connection to 127.0.0.1:port inside a
// pod's network namespace. Node cannot setns(2) itself, so one helper per pod,
// berth-nsdial (src/pinns/nsdial.c), enters the namespace once and dials there
// on request, handing each connected socket back over Node's IPC channel: a
// forwarded connection is then an ordinary socket in berthd (backpressure and
// half-close for free) and costs no process. The helper lives while its pod
// has connections, and a moment after, so a burst of connections reuses it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { errorMessage, failedPrecondition, notFound } from '../errors';
import { resolveBinary } from '../runtime/handlers';
import type { PortForwardBackend } from './backend';

export interface NetnsPortForwardOptions {
  /** The pod's network namespace file (e.g. /run/berth/netns/<id>), or undefined if the pod is unknown. */
  netnsPath: (podSandboxId: string) => string | undefined | Promise<string | undefined>;
  /** The berth-nsdial binary; default: findNsdial(). */
  nsdial?: string;
  /** How long a helper with no connection left stays for the next one. */
  idleMs?: number;
}

/** Where berth-nsdial is looked for: $BERTH_NSDIAL, the repo's build/, the install dirs, then PATH. */
export function findNsdial(): string | undefined {
  const candidates = [
    process.env.BERTH_NSDIAL,
    path.resolve(__dirname, '..', '..', '..', 'build', 'berth-nsdial'),
    '/usr/local/lib/berth/berth-nsdial',
    '/usr/local/libexec/berth/berth-nsdial',
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  return resolveBinary('berth-nsdial');
}

interface DialReply {
  id: number;
  error?: string;
}

function isDialReply(v: unknown): v is DialReply {
  return typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'number';
}

/** One berth-nsdial process in one network namespace. */
class NetnsDialer {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (s: Socket) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private stderr = '';
  private connections = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  exited = false;

  constructor(
    binary: string,
    netns: string,
    private readonly idleMs: number,
    private readonly onExit: () => void,
  ) {
    this.child = spawn(binary, [netns], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (d: string) => {
      if (this.stderr.length < 4096) this.stderr += d;
    });
    this.child.on('message', (msg: unknown, handle: unknown) => {
      const reply = isDialReply(msg) ? msg : undefined;
      const waiter = reply && this.pending.get(reply.id);
      if (!reply || !waiter) {
        (handle as Socket | undefined)?.destroy();
        return;
      }
      this.pending.delete(reply.id);
      if (handle) waiter.resolve(handle as Socket);
      else waiter.reject(new Error(reply.error ?? 'berth-nsdial sent no socket'));
    });
    this.child.on('error', (err) => this.gone(err.message));
    this.child.on('exit', (code, sig) => this.gone(this.stderr.trim() || `berth-nsdial exited with ${code ?? sig}`));
  }

  private gone(why: string): void {
    if (this.exited) return;
    this.exited = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const w of this.pending.values()) w.reject(new Error(why));
    this.pending.clear();
    this.onExit();
  }

  async dial(port: number, signal: AbortSignal): Promise<Socket> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.connections++;
    let sock: Socket;
    try {
      const id = this.nextId++;
      sock = await new Promise<Socket>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.child.send({ dial: port, id }, (err) => {
          if (err && this.pending.delete(id)) reject(err);
        });
      });
    } catch (err) {
      this.release();
      throw err;
    }
    // The pod side may half-close and still read what we send.
    sock.allowHalfOpen = true;
    sock.once('close', () => this.release());
    if (signal.aborted) sock.destroy();
    else signal.addEventListener('abort', () => sock.destroy(), { once: true });
    return sock;
  }

  private release(): void {
    if (--this.connections > 0 || this.exited) return;
    this.idleTimer = setTimeout(() => this.stop(), this.idleMs);
    this.idleTimer.unref();
  }

  stop(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

export class NetnsPortForwardBackend implements PortForwardBackend {
  private readonly dialers = new Map<string, NetnsDialer>();
  private readonly idleMs: number;

  constructor(private readonly opts: NetnsPortForwardOptions) {
    this.idleMs = opts.idleMs ?? 2000;
  }

  /** berth-nsdial processes running now (one per pod with connections). */
  get helpers(): number {
    return this.dialers.size;
  }

  async portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex> {
    const netns = await this.opts.netnsPath(podSandboxId);
    if (!netns) throw notFound(`pod sandbox ${podSandboxId} not found or has no network namespace`);
    try {
      await fs.promises.access(netns);
    } catch {
      throw notFound(`network namespace ${netns} of pod sandbox ${podSandboxId} does not exist`);
    }
    let dialer = this.dialers.get(netns);
    if (!dialer || dialer.exited) {
      const binary = this.opts.nsdial ?? findNsdial();
      if (!binary) throw failedPrecondition('berth-nsdial is not installed (make build)');
      const d: NetnsDialer = new NetnsDialer(binary, netns, this.idleMs, () => {
        if (this.dialers.get(netns) === d) this.dialers.delete(netns);
      });
      dialer = d;
      this.dialers.set(netns, d);
    }
    try {
      return await dialer.dial(port, signal);
    } catch (err) {
      // A connection that fails is the user's to read (the backend contract):
      // a stream that errors with the reason, not a rejection (kept for unknown pods).
      const failed = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
      setImmediate(() => failed.destroy(new Error(errorMessage(err))));
      return failed;
    }
  }

  /** Stops every helper (berthd shutting down). */
  close(): void {
    for (const d of this.dialers.values()) d.stop();
  }
}
