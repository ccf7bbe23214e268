// Fixtures for the CNI tests: a private conf dir, bridge, subnet and IPAM data
// dir per test run, network namespaces made with `ip netns add` (the same
// bind-mounted nsfs files the sandbox code pins), and a thorough cleanup that
// removes only what this run created.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { CniManager } from '../../src/network/cni';

export const BIN_DIRS = ['/usr/lib/cni'];

export function sh(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function mustSh(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

export const hex = (n: number): string => randomBytes(n).toString('hex');

export class TestNetwork {
  readonly tag = hex(3);
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cni-'));
  readonly confDir = path.join(this.dir, 'net.d');
  readonly cacheDir = path.join(this.dir, 'results');
  readonly ipamDir = path.join(this.dir, 'ipam');
  readonly bridge = `bt${this.tag}`;
  readonly network = `berthtest-${this.tag}`;
  // 10.91.X.0/24: a private /24 per run so concurrent runs and the host's networks don't collide.
  readonly octet = 1 + (parseInt(this.tag.slice(0, 2), 16) % 250);
  readonly subnet = `10.91.${this.octet}.0/24`;
  private readonly netnses: string[] = [];
  private readonly procs: ChildProcess[] = [];
  private readonly managers: CniManager[] = [];
  readonly pods: Array<{ id: string; name: string; namespace: string; uid: string; netnsPath: string }> = [];

  constructor() {
    fs.mkdirSync(this.confDir);
  }

  bridgePlugin(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      type: 'bridge',
      bridge: this.bridge,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: this.subnet }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: this.ipamDir,
      },
      ...extra,
    };
  }

  /** The standard test list: bridge + host-local + portmap (no loopback: berth must bring lo up itself). */
  writeConflist(opts: { file?: string; cniVersion?: string; plugins?: Array<Record<string, unknown>> } = {}): string {
    const plugins = opts.plugins ?? [this.bridgePlugin(), { type: 'portmap', capabilities: { portMappings: true } }];
    const file = path.join(this.confDir, opts.file ?? '10-test.conflist');
    fs.writeFileSync(file, JSON.stringify({ cniVersion: opts.cniVersion ?? '1.0.0', name: this.network, plugins }));
    return file;
  }

  manager(confDir = this.confDir): CniManager {
    const m = new CniManager({ binDirs: BIN_DIRS, confDir, cacheDir: this.cacheDir });
    this.managers.push(m);
    return m;
  }

  async netns(): Promise<string> {
    const name = `bt-${this.tag}-${hex(3)}`;
    await mustSh('ip', ['netns', 'add', name]);
    this.netnses.push(name);
    return `/run/netns/${name}`;
  }

  async pod(name = `pod-${hex(2)}`): Promise<{ id: string; name: string; namespace: string; uid: string; netnsPath: string }> {
    const pod = { id: hex(32), name, namespace: 'default', uid: `uid-${hex(8)}`, netnsPath: await this.netns() };
    this.pods.push(pod);
    return pod;
  }

  /** Serves DIR with `text` as index.html on :8080 inside the netns. */
  serveHttp(netnsPath: string, text: string): void {
    const docroot = path.join(this.dir, `www-${hex(3)}`);
    fs.mkdirSync(docroot);
    fs.writeFileSync(path.join(docroot, 'index.html'), text);
    const proc = spawn('ip', ['netns', 'exec', path.basename(netnsPath), 'busybox', 'httpd', '-f', '-p', '8080', '-h', docroot], {
      stdio: 'ignore',
    });
    this.procs.push(proc);
  }

  /** Lines of iptables-save (v4, all tables) mentioning the text. */
  async iptablesMentioning(text: string): Promise<string[]> {
    const out = await mustSh('iptables-save', []);
    return out.split('\n').filter((l) => l.includes(text));
  }

  /** Lease files host-local holds for this network (not its bookkeeping files). */
  leases(): string[] {
    try {
      return fs.readdirSync(path.join(this.ipamDir, this.network)).filter((f) => !f.startsWith('last_reserved_ip') && f !== 'lock');
    } catch {
      return [];
    }
  }

  /** Interfaces enslaved to the test bridge (the pods' host-side veths). */
  async bridgePorts(): Promise<string[]> {
    const r = await sh('ip', ['-o', 'link', 'show', 'master', this.bridge]);
    if (r.code !== 0) return [];
    return r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '');
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL');
    for (const pod of this.pods) {
      for (const m of this.managers.slice(0, 1)) await m.teardown(pod).catch(() => undefined);
    }
    for (const ns of this.netnses) await sh('ip', ['netns', 'del', ns]);
    await sh('ip', ['link', 'del', this.bridge]);
    await removeIptablesMentioning(this.network);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Deletes rules whose comment names the network, then the per-pod chains they jumped to (never the shared CNI-HOSTPORT-* ones). */
export async function removeIptablesMentioning(network: string): Promise<void> {
  for (const table of ['nat', 'filter']) {
    const out = (await sh('iptables-save', ['-t', table])).stdout;
    const rules = out.split('\n').filter((l) => l.startsWith('-A ') && l.includes(network));
    const chains = new Set<string>();
    for (const rule of rules) {
      const target = /-j (CNI-[A-Za-z0-9-]+)/.exec(rule)?.[1];
      if (target && !target.startsWith('CNI-HOSTPORT-')) chains.add(target);
      await sh('sh', ['-c', `iptables -w -t ${table} -D ${rule.slice(3)}`]);
    }
    for (const chain of chains) {
      await sh('iptables', ['-w', '-t', table, '-F', chain]);
      await sh('iptables', ['-w', '-t', table, '-X', chain]);
    }
  }
}

/** GET http://host:port/ with retries while the server starts. */
export async function httpGet(host: string, port: number, attempts = 30): Promise<string> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const req = http.get({ host, port, path: '/index.html', timeout: 2000 }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`GET http://${host}:${port}/ failed: ${String(last)}`);
}

export async function readSysctl(key: string): Promise<string> {
  return fs.promises.readFile(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').then((s) => s.trim());
}
