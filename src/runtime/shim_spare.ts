// Spare berth-shims: one shim per binary started ahead of need, detached and
// waiting on a connection for its orders (src/shim/PROTOCOL.md, "Spare
// shims"), so CreateContainer's shim costs no process start (berth-launch's
// fork and exec, the loader, the shim's double fork: 5 of the 6.6 ms from
// berth-launch's fork to runc's, median, on this 2-core machine under load),
// only the orders and `runtime create`. A spare lives only
// as long as berthd holds its connection: close() (or berthd's death) ends it.
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { launch } from '../util/launch';

/** Room in a spare's command line for the orders written over it (so its /proc/<pid>/cmdline names its state dir). */
const CMDLINE_ROOM = 'x'.repeat(3000);

/** Failed connections to new spares in a row after which no more are started. */
const MAX_CONNECT_FAILURES = 3;

interface Spare {
  binary: string;
  /** The runtime whose sealed copy (berth-launch's) the spare holds, or '' for none. */
  runtimeCopy: string;
  sock: net.Socket;
}

export class ShimSpares {
  private readonly ready: Spare[] = [];
  private readonly starting = new Map<string, Promise<void>>();
  private closed = false;
  private connectFailures = 0;

  /**
   * The connection of a waiting spare of `binary` (holding a sealed copy of
   * `runtimeCopy`, '' for none), or undefined when none is waiting; either
   * way another is started for the next create.
   */
  take(binary: string, runtimeCopy = ''): net.Socket | undefined {
    const i = this.ready.findIndex((s) => s.binary === binary && s.runtimeCopy === runtimeCopy && !s.sock.destroyed);
    const spare = i >= 0 ? this.ready.splice(i, 1)[0] : undefined;
    void this.refill(binary, runtimeCopy).catch(() => undefined); // none this time: the next create starts its shim itself
    if (!spare) return undefined;
    spare.sock.ref();
    spare.sock.removeAllListeners('close');
    return spare.sock;
  }

  /** Resolves once a spare of `binary` (and `runtimeCopy`) waits, starting one if none is waiting or starting. */
  prepare(binary: string, runtimeCopy = ''): Promise<void> {
    return this.refill(binary, runtimeCopy);
  }

  /** Ends every waiting spare (they exit when their connection closes). */
  close(): void {
    this.closed = true;
    for (const s of this.ready.splice(0)) s.sock.destroy();
  }

  private refill(binary: string, runtimeCopy: string): Promise<void> {
    if (this.closed || this.ready.some((s) => s.binary === binary && s.runtimeCopy === runtimeCopy && !s.sock.destroyed)) return Promise.resolve();
    const key = `${binary}\0${runtimeCopy}`;
    let p = this.starting.get(key);
    if (!p) {
      p = this.start(binary, runtimeCopy).finally(() => this.starting.delete(key));
      this.starting.set(key, p);
    }
    return p;
  }

  private async start(binary: string, runtimeCopy: string): Promise<void> {
    const name = `berth-shim-spare-${randomBytes(16).toString('hex')}`;
    const r = await launch(binary, ['--spare-socket', name, '--ready-fd', '3', '--spare-pad', CMDLINE_ROOM], {
      detached: true,
      readyFd: true,
      stdoutCap: 0,
      stderrCap: 4096,
      runtimeCopy: runtimeCopy || undefined,
    });
    const line = r.ready.toString('utf8');
    if (!line.startsWith('SPARE ')) throw new Error(`berth-shim spare did not start: ${line.trim() || r.stderr.toString('utf8').trim() || 'no output'}`);
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(`\0${name}`);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }).catch((err: unknown) => {
      // The spare waits for nobody and leaves within 10 s. Failing again and
      // again (a Node that names abstract sockets otherwise): no more spares.
      if (++this.connectFailures >= MAX_CONNECT_FAILURES) this.closed = true;
      throw err;
    });
    this.connectFailures = 0;
    // Idle, it must not keep berthd's event loop alive.
    sock.unref();
    sock.on('error', () => undefined);
    const spare: Spare = { binary, runtimeCopy, sock };
    sock.once('close', () => {
      const i = this.ready.indexOf(spare);
      if (i >= 0) this.ready.splice(i, 1);
    });
    if (this.closed) sock.destroy();
    else this.ready.push(spare);
  }
}

/** The orders for a spare: its command line after the program name, as PROTOCOL.md frames it. */
export function sparesOrders(args: readonly string[]): Buffer {
  const body = Buffer.from(args.map((a) => `${a}\0`).join(''), 'utf8');
  return Buffer.concat([Buffer.from(`RUN ${body.length}\n`), body]);
}
