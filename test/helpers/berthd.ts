// Starts a real berthd on a temporary socket, root and state dir, for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriClient } from '../../src/client/cri_client';
import { freePort } from './registry';

export const BERTHD_MAIN = path.resolve(__dirname, '..', '..', 'src', 'daemon', 'main.js');

const DEPLOY_DIR = path.resolve(__dirname, '..', '..', '..', 'deploy');

/** The node flags berthd is deployed with (deploy/node-flags; the launcher and `make run` pass them too). */
export function berthdNodeFlags(): string[] {
  return fs.readFileSync(path.join(DEPLOY_DIR, 'node-flags'), 'utf8').split(/\s+/).filter(Boolean);
}

/** The environment berthd is deployed with (deploy/node-env: NAME=value lines; the launcher and `make run` set it too). */
export function berthdNodeEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(path.join(DEPLOY_DIR, 'node-env'), 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

export interface BerthdOptions {
  /** Extra config TOML appended to the generated file. */
  configToml?: string;
  /** Extra command-line flags. */
  args?: string[];
  /** Reuse these directories (for restart tests). */
  dir?: string;
  metrics?: boolean;
  /** Extra keys of the [metrics] table (e.g. tls_cert_file). */
  metricsToml?: string;
  /** Flags for node itself (e.g. --cpu-prof), after the deployed ones (berthdNodeFlags) and before berthd's script. */
  nodeArgs?: string[];
  /** Port of the metrics listener when metrics are on (default: a random one). */
  metricsPort?: number;
  /** Extra environment for every launch (e.g. NOTIFY_SOCKET). */
  env?: Record<string, string>;
  /** berthd's main.js to run (default: this tree's; a package test runs the packaged one). */
  main?: string;
}

export class TestBerthd {
  proc?: ChildProcess;
  client?: CriClient;
  output = '';
  readonly socket: string;
  readonly root: string;
  readonly state: string;
  readonly configPath: string;
  metricsPort = 0;

  constructor(
    readonly dir: string,
    private readonly opts: BerthdOptions,
  ) {
    this.socket = path.join(dir, 'berth.sock');
    this.root = path.join(dir, 'root');
    this.state = path.join(dir, 'state');
    this.configPath = path.join(dir, 'config.toml');
  }

  static async start(opts: BerthdOptions = {}): Promise<TestBerthd> {
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
    const d = new TestBerthd(dir, opts);
    await d.launch();
    return d;
  }

  /** `env` is added to this launch's environment only (e.g. BERTH_CRASH_AT for crash tests). */
  async launch(env: Record<string, string> = {}): Promise<void> {
    const metricsEnabled = this.opts.metrics ?? false;
    if (metricsEnabled && !this.metricsPort) this.metricsPort = this.opts.metricsPort ?? (await freePort());
    const toml = [
      `socket = ${JSON.stringify(this.socket)}`,
      `root = ${JSON.stringify(this.root)}`,
      `state = ${JSON.stringify(this.state)}`,
      `[log]\nlevel = "debug"`,
      `[metrics]\nenabled = ${metricsEnabled}\naddress = "127.0.0.1:${this.metricsPort}"\n${this.opts.metricsToml ?? ''}`,
      this.opts.configToml ?? '',
    ].join('\n');
    fs.writeFileSync(this.configPath, toml);
    this.output = '';
    const proc = spawn(process.execPath, [...berthdNodeFlags(), ...(this.opts.nodeArgs ?? []), this.opts.main ?? BERTHD_MAIN, '--config', this.configPath, ...(this.opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...berthdNodeEnv(), ...this.opts.env, ...env },
    });
    this.proc = proc;
    proc.stdout?.on('data', (b: Buffer) => (this.output += b.toString()));
    proc.stderr?.on('data', (b: Buffer) => (this.output += b.toString()));
    const deadline = Date.now() + 30_000;
    while (!this.output.includes('berthd serving')) {
      if (proc.exitCode !== null) throw new Error(`berthd exited ${proc.exitCode}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`berthd did not start:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.client = new CriClient(this.socket);
  }

  get cri(): CriClient {
    if (!this.client) throw new Error('berthd not started');
    return this.client;
  }

  /** Sends a signal and waits for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    this.client?.close();
    this.client = undefined;
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill(signal);
    return exited;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (!this.opts.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
