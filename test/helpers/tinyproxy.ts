// A real forward proxy for tests: Debian's tinyproxy, started on a free
// loopback port with its own config and log, stopped by its PID. The log
// tells which requests went through it ("GET http://..." or "CONNECT host:port").
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { freePort } from './registry';

export class Tinyproxy {
  private constructor(
    readonly url: string,
    readonly port: number,
    private readonly proc: ChildProcess,
    private readonly dir: string,
  ) {}

  /** Starts tinyproxy; with `auth`, it demands Proxy-Authorization Basic. */
  static async start(opts: { auth?: { username: string; password: string } } = {}): Promise<Tinyproxy> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tinyproxy-'));
    const port = await freePort();
    const conf = [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 60',
      `LogFile "${path.join(dir, 'log')}"`,
      'LogLevel Connect',
      'MaxClients 50',
      'Allow 127.0.0.1',
      'DisableViaHeader Yes',
      // No ConnectPort line: CONNECT is allowed to any port (the registries here use high ones).
      ...(opts.auth ? [`BasicAuth ${opts.auth.username} ${opts.auth.password}`] : []),
    ];
    fs.writeFileSync(path.join(dir, 'tinyproxy.conf'), conf.join('\n') + '\n');
    const proc = spawn('/usr/bin/tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`tinyproxy exited ${proc.exitCode}: ${stderr}`);
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`tinyproxy did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return new Tinyproxy(`http://127.0.0.1:${port}`, port, proc, dir);
  }

  /** Request lines tinyproxy logged, e.g. "GET http://10.0.0.1:5000/v2/" or "CONNECT 10.0.0.1:5000". */
  requests(): string[] {
    let log = '';
    try {
      log = fs.readFileSync(path.join(this.dir, 'log'), 'utf8');
    } catch {
      return [];
    }
    return [...log.matchAll(/Request \(file descriptor \d+\): (\S+ \S+)/g)].map((m) => m[1]);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid !== undefined) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      process.kill(this.proc.pid, 'SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A non-loopback IPv4 address of this machine: registry traffic to loopback is never proxied. */
export function externalIPv4(): string | undefined {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}
