// The real port-forward backend: a TCP connection to 127.0.0.1:port inside a
// pod's network namespace. Node cannot setns(2) itself, so a relay process is
// started in the namespace with nsenter: busybox's nc (busybox-static is a
// berth dependency) connects and copies stdin/stdout, and shuts down its
// write side when its stdin ends, which gives us TCP half-close.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { Duplex } from 'node:stream';
import { notFound } from '../errors';
import type { PortForwardBackend } from './backend';

export interface NetnsPortForwardOptions {
  /** The pod's network namespace file (e.g. /run/berth/netns/<id>), or undefined if the pod is unknown. */
  netnsPath: (podSandboxId: string) => string | undefined | Promise<string | undefined>;
  nsenter?: string;
  busybox?: string;
}

export class NetnsPortForwardBackend implements PortForwardBackend {
  private readonly opts: Required<NetnsPortForwardOptions>;

  constructor(opts: NetnsPortForwardOptions) {
    this.opts = { nsenter: 'nsenter', busybox: '/bin/busybox', ...opts };
  }

  async portForward(podSandboxId: string, port: number, signal: AbortSignal): Promise<Duplex> {
    const netns = await this.opts.netnsPath(podSandboxId);
    if (!netns) throw notFound(`pod sandbox ${podSandboxId} not found or has no network namespace`);
    try {
      await fs.promises.access(netns);
    } catch {
      throw notFound(`network namespace ${netns} of pod sandbox ${podSandboxId} does not exist`);
    }
    const child = spawn(this.opts.nsenter, [`--net=${netns}`, '--', this.opts.busybox, 'nc', '127.0.0.1', String(port)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      signal,
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.stdin.on('error', () => undefined);
    let exited = false;
    const duplex = new Duplex({
      allowHalfOpen: true,
      write(chunk: Buffer, _enc, cb) {
        if (exited || child.stdin.destroyed) return cb();
        if (child.stdin.write(chunk)) cb();
        else child.stdin.once('drain', () => cb());
      },
      final(cb) {
        child.stdin.end();
        cb();
      },
      read() {
        child.stdout.resume();
      },
      destroy(err, cb) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        cb(err);
      },
    });
    child.stdout.on('data', (d: Buffer) => {
      if (!duplex.push(d)) child.stdout.pause();
    });
    // 'close' comes after exit and after stdout/stderr have ended: all output is in.
    child.on('close', (code, sig) => {
      exited = true;
      if (code === 0 || signal.aborted || duplex.destroyed) {
        duplex.push(null);
        return;
      }
      const why = stderr.trim().replace(/^nc: /, '') || `relay exited with ${code ?? sig}`;
      duplex.destroy(new Error(why));
    });
    child.on('error', (err) => {
      exited = true;
      if (!signal.aborted) duplex.destroy(new Error(`cannot start port-forward relay: ${err.message}`));
    });
    return duplex;
  }
}
