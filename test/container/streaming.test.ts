// The streaming backends (exec under berth-exec, attach through the shim,
// port-forward) driven directly with an in-memory StreamSession against real
// containers that a real berthd created with runc.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import {
  containerStreamingBackends,
  type StreamingContainers,
  type StreamingPods,
} from '../../src/container/streaming_backends';
import type { ContainerRecord } from '../../src/container/record';
import { BerthError } from '../../src/errors';
import { resolveBinary } from '../../src/runtime/handlers';
import { ContainerRuntime } from '../../src/runtime/container_runtime';
import { execProcess } from '../../src/runtime/spec/builder';
import type { OciProcess } from '../../src/runtime/spec/oci_types';
import type { SandboxRecord } from '../../src/sandbox/record';
import type { ShimAttachOptions } from '../../src/runtime/shim_client';
import type { StreamingBackends, StreamSession, TerminalSize } from '../../src/streaming/backend';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

interface FakeSession {
  session: StreamSession;
  stdin: PassThrough | null;
  out(): string;
  err(): string;
  resize(size: TerminalSize): void;
  abort(): void;
}

function fakeSession(opts: { tty?: boolean; stdin?: boolean }): FakeSession {
  const tty = opts.tty ?? false;
  const stdin = opts.stdin ? new PassThrough() : null;
  const stdout = new PassThrough();
  const stderr = tty ? null : new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const ac = new AbortController();
  let listener: ((s: TerminalSize) => void) | undefined;
  let last: TerminalSize | undefined;
  return {
    session: {
      tty,
      stdin,
      stdout,
      stderr,
      signal: ac.signal,
      onResize(l) {
        listener = l;
        if (last) l(last);
      },
    },
    stdin,
    out: () => out,
    err: () => err,
    resize(size) {
      last = size;
      listener?.(size);
    },
    abort: () => ac.abort(),
  };
}

/** One runtime façade per runtime root, as berthd keeps one (and with it one launcher and pool of exec supervisors); closed after the tests. */
const runtimes = new Map<string, ContainerRuntime>();

/** Reads berthd's durable records (read-only) so the backends run in this process against its containers. */
function lookups(fx: ContainerFixture): { containers: StreamingContainers; pods: StreamingPods } {
  const record = (id: string): ContainerRecord =>
    JSON.parse(fs.readFileSync(path.join(fx.berthd.root, 'containers', `${id}.json`), 'utf8')) as ContainerRecord;
  const runc = resolveBinary('runc') ?? 'runc';
  const runtimeRoot = (id: string): string => {
    const base = path.join(fx.berthd.state, 'runtime');
    const dir = fs.readdirSync(base).find((d) => fs.existsSync(path.join(base, d, id)));
    if (!dir) throw new Error(`no runtime state for ${id} under ${base}`);
    return path.join(base, dir);
  };
  const runtimeFor = (name: string, root: string): ContainerRuntime => {
    let r = runtimes.get(root);
    if (!r) {
      r = new ContainerRuntime(() => ({ name, binary: runc, root, tmpDir: os.tmpdir() }));
      runtimes.set(root, r);
    }
    return r;
  };
  const containers: StreamingContainers = {
    async execTarget(id: string, cmd: string[], tty: boolean) {
      const rec = record(id);
      const spec = JSON.parse(fs.readFileSync(path.join(rec.bundleDir, 'config.json'), 'utf8')) as { process: OciProcess };
      const runtime = runtimeFor(rec.runtimeHandler || 'runc', runtimeRoot(id));
      const process = execProcess(spec.process, cmd, tty);
      return { id, start: (opts: { tty: boolean; stdin: boolean }) => runtime.startExec(rec, process, opts) };
    },
    async status(id: string) {
      return record(id);
    },
    async attach(rec: ContainerRecord, opts: ShimAttachOptions) {
      return new ContainerRuntime(() => ({ name: 'runc', binary: runc, root: runtimeRoot(rec.id), tmpDir: os.tmpdir() })).attach(rec, opts);
    },
  };
  const pods: StreamingPods = {
    get(id: string): SandboxRecord {
      const file = path.join(fx.berthd.root, 'pods', `${id}.json`);
      if (!fs.existsSync(file)) throw new BerthError('NOT_FOUND', `pod sandbox "${id}" not found`);
      return JSON.parse(fs.readFileSync(file, 'utf8')) as SandboxRecord;
    },
  };
  return { containers, pods };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('containers: streaming backends (exec, attach, port-forward) with real runc', function () {
  this.timeout(60000);
  let fx: ContainerFixture;
  let podId: string;
  let podCfg: ReturnType<typeof podConfig>;
  let backends: StreamingBackends;
  let worker: string;

  const rt = () => fx.berthd.cri.runtime;

  async function run(name: string, extra: Parameters<typeof containerConfig>[2] = {}): Promise<string> {
    const { containerId } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(fx.image, name, extra),
      sandboxConfig: podCfg,
    });
    await rt().StartContainer({ containerId });
    return containerId;
  }

  async function psArgs(id: string): Promise<string> {
    const r = await rt().ExecSync({ containerId: id, cmd: ['ps', '-o', 'args'], timeout: '10' });
    return r.stdout.toString();
  }

  before(async function () {
    if (process.getuid?.() !== 0 || !resolveBinary('runc')) this.skip();
    fx = await startContainerFixture();
    podCfg = podConfig(fx);
    podId = (await rt().RunPodSandbox({ config: podCfg })).podSandboxId;
    const l = lookups(fx);
    backends = containerStreamingBackends(l.containers, l.pods);
    worker = await run('worker');
  });
  after(async () => {
    for (const r of runtimes.values()) r.close();
    runtimes.clear();
    await fx?.cleanup();
  });

  describe('exec', () => {
    it('keeps stdout and stderr apart and returns the exit code', async () => {
      const s = fakeSession({});
      const code = await backends.exec.exec(worker, ['sh', '-c', 'echo out; echo err >&2; exit 3'], s.session);
      assert.equal(code, 3);
      assert.equal(s.out(), 'out\n');
      assert.equal(s.err(), 'err\n');
    });

    it('pipes stdin through to EOF', async () => {
      const s = fakeSession({ stdin: true });
      const p = backends.exec.exec(worker, ['cat'], s.session);
      s.stdin?.write('hello ');
      s.stdin?.end('stdin');
      assert.equal(await p, 0);
      assert.equal(s.out(), 'hello stdin');
    });

    it('does not wait for a background child that holds the output', async () => {
      const s = fakeSession({});
      const code = await backends.exec.exec(worker, ['sh', '-c', 'sleep 30 & echo quick; exit 4'], s.session);
      assert.equal(code, 4);
      assert.equal(s.out(), 'quick\n');
    });

    it('reports a command that cannot be run as an error, not an exit code', async () => {
      const s = fakeSession({});
      await assert.rejects(backends.exec.exec(worker, ['/no/such/binary'], s.session), (e: unknown) => e instanceof BerthError);
    });

    it('gives a terminal with a tty, and applies resizes', async () => {
      const s = fakeSession({ tty: true });
      assert.equal(await backends.exec.exec(worker, ['tty'], s.session), 0);
      assert.match(s.out(), /^\/dev\/pts\/\d+\r?\n$/);

      const t = fakeSession({ tty: true, stdin: true });
      const p = backends.exec.exec(worker, ['sh', '-c', 'echo ready; read x; stty size; exit 5'], t.session);
      await waitFor('ready', async () => (t.out().includes('ready') ? true : undefined));
      t.resize({ width: 123, height: 45 });
      await sleep(300);
      t.stdin?.write('\n');
      assert.equal(await p, 5);
      assert.match(t.out(), /45 123\r?\n/);
    });

    it('kills the process (and what it started) when the client goes away', async () => {
      const s = fakeSession({});
      const p = backends.exec.exec(worker, ['sh', '-c', 'sleep 4322 & echo started; sleep 4321'], s.session);
      await waitFor('started', async () => (s.out().includes('started') ? true : undefined));
      assert.match(await psArgs(worker), /sleep 4321/);
      s.abort();
      assert.equal(await p, 137);
      const ps = await psArgs(worker);
      assert.doesNotMatch(ps, /sleep 4321/);
      assert.doesNotMatch(ps, /sleep 4322/);
    });

    it('rejects an exec into an exited container with FAILED_PRECONDITION', async () => {
      const id = await run('short', { command: ['true'] });
      await waitFor('exit', async () => {
        const st = await rt().ContainerStatus({ containerId: id, verbose: false });
        return st.status?.state === 'CONTAINER_EXITED' ? true : undefined;
      });
      await assert.rejects(
        backends.exec.exec(id, ['true'], fakeSession({}).session),
        (e: unknown) => e instanceof BerthError && (e.kind === 'FAILED_PRECONDITION' || e.kind === 'NOT_FOUND'),
      );
    });
  });

  describe('the berth-exec supervisor', () => {
    async function start(cmd: string[], tty = false) {
      const t = await lookups(fx).containers.execTarget(worker, cmd, tty);
      return t.start({ tty, stdin: false });
    }
    const collect = (r: NodeJS.ReadableStream): Promise<string> =>
      new Promise((resolve) => {
        let text = '';
        r.on('data', (d: Buffer) => (text += d.toString()));
        r.on('close', () => resolve(text));
      });

    it('hands the process only its stdio (no leaked descriptors), with or without a terminal', async () => {
      for (const tty of [false, true]) {
        const ex = await start(['ls', '/proc/self/fd'], tty);
        const out = collect(ex.stdout);
        assert.equal(await ex.exited, 0);
        // ls itself holds one more: the directory it reads.
        assert.deepEqual((await out).split(/\s+/).filter(Boolean).map(Number).sort(), [0, 1, 2, 3], `tty=${tty}`);
      }
    });

    it('reports the host pid, and 128+signal for a process killed by a signal', async () => {
      const ex = await start(['sh', '-c', 'kill -USR1 $$']);
      assert.ok(((await ex.pid) ?? 0) > 1);
      assert.equal(await ex.exited, 128 + 10);
    });

    it('kills the process when its control socket closes (berthd gone) or on SIGTERM', async () => {
      const a = await start(['sleep', '4331']);
      assert.ok(((await a.pid) ?? 0) > 1);
      a.supervisor.control.destroy();
      // No status can come back on a closed socket: it settles once the supervisor is gone.
      await assert.rejects(a.exited, /without a status/);
      const b = await start(['sleep', '4332']);
      assert.ok(((await b.pid) ?? 0) > 1);
      process.kill(b.supervisor.pid, 'SIGTERM');
      assert.equal(await b.exited, 137);
      const ps = await psArgs(worker);
      assert.doesNotMatch(ps, /sleep 433[12]/);
    });
  });

  describe('the berth-exec supervisor, killed while the runtime is starting the process', () => {
    it('leaves nothing running', async () => {
      const t = await lookups(fx).containers.execTarget(worker, ['sleep', '4341'], false);
      const ex = await t.start({ tty: false, stdin: false });
      ex.kill(); // the runtime has barely started
      const outcome = await ex.exited.then(
        (code) => code,
        (err: unknown) => err,
      );
      assert.ok(outcome === 137 || outcome instanceof BerthError, String(outcome));
      assert.doesNotMatch(await psArgs(worker), /sleep 4341/);
    });
  });

  describe('ExecSync through berthd', () => {
    it('returns promptly with the exit code when a background child holds the pipes', async () => {
      const r = await rt().ExecSync({ containerId: worker, cmd: ['sh', '-c', 'sleep 30 & echo quick; exit 6'], timeout: '20' });
      assert.equal(r.exitCode, 6);
      assert.equal(r.stdout.toString(), 'quick\n');
    });
  });

  describe('attach', () => {
    it('relays input and output of a container with stdin and a tty, resizes it, and never stops it', async () => {
      const id = await run('interactive', { command: ['sh'], stdin: true, tty: true });
      const s = fakeSession({ tty: true, stdin: true });
      const p = backends.attach.attach(id, s.session);
      await sleep(300); // attach is for output from now on: let it connect
      s.stdin?.write('echo hi-$((40+2))\n');
      await waitFor('echo output', async () => (s.out().includes('hi-42') ? true : undefined));
      s.resize({ width: 90, height: 33 });
      await sleep(300);
      s.stdin?.write('stty size\n');
      await waitFor('stty output', async () => (/33 90/.test(s.out()) ? true : undefined));
      s.abort();
      await p;
      const st = await rt().ContainerStatus({ containerId: id, verbose: false });
      assert.equal(st.status?.state, 'CONTAINER_RUNNING');

      // A second attachment ends when the container exits.
      const s2 = fakeSession({ tty: true, stdin: true });
      const p2 = backends.attach.attach(id, s2.session);
      await sleep(300);
      s2.stdin?.write('echo bye; exit 0\n');
      await p2;
      assert.match(s2.out(), /bye/);
    });

    it('ignores input for a container created without stdin and still streams its output', async () => {
      const id = await run('ticker', { command: ['sh', '-c', 'while true; do echo tick; echo tock >&2; sleep 0.2; done'] });
      const s = fakeSession({ stdin: true });
      const p = backends.attach.attach(id, s.session);
      s.stdin?.write('ignored\n');
      await waitFor('output', async () => (s.out().includes('tick') && s.err().includes('tock') ? true : undefined));
      s.abort();
      await p;
      const st = await rt().ContainerStatus({ containerId: id, verbose: false });
      assert.equal(st.status?.state, 'CONTAINER_RUNNING');
    });
  });

  describe('port-forward', () => {
    it('connects to a listener in a host-network pod, with half-close', async () => {
      const port = 30000 + Math.floor(Math.random() * 20000);
      await run('echo-server', { command: ['nc', '-l', '-p', String(port), '-e', 'cat'] });
      const ac = new AbortController();
      const conn = await waitFor('listener', async () => {
        const d = await backends.portForward.portForward(podId, port, ac.signal);
        const ok = await new Promise<boolean>((resolve) => {
          d.once('error', () => resolve(false));
          d.once('connect', () => resolve(true));
        });
        return ok ? d : undefined;
      });
      const received = await new Promise<string>((resolve, reject) => {
        let text = '';
        conn.on('data', (b: Buffer) => (text += b.toString()));
        conn.on('end', () => resolve(text));
        conn.on('error', reject);
        conn.end('ping through the pod');
      });
      assert.equal(received, 'ping through the pod');
      ac.abort();
    });

    it('connects inside a pod network namespace through the netns relay, with half-close', async function () {
      // A namespace of its own with a listener, standing in for a CNI pod (the fixture has no CNI).
      const port = 8080;
      const holder = spawn('unshare', ['--net', 'sh', '-c', `ip link set lo up && exec /bin/busybox nc -l -p ${port} -e /bin/cat`], {
        stdio: 'ignore',
      });
      try {
        const netns = `/proc/${String(holder.pid)}/ns/net`;
        // Until unshare has made its namespace, the holder's netns link still names
        // the host's; a dialer started then would stay in the host's for good.
        await waitFor('the holder in a namespace of its own', async () =>
          fs.readlinkSync(netns) !== fs.readlinkSync('/proc/self/ns/net') ? true : undefined);
        const pods: StreamingPods = {
          get: (id: string) =>
            ({ id, state: 'ready', namespaceModes: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' }, nsPaths: { net: netns } }) as SandboxRecord,
        };
        const forward = containerStreamingBackends(lookups(fx).containers, pods).portForward;
        const received = await waitFor('listener in the namespace', async () => {
          const conn = await forward.portForward('a'.repeat(64), port, new AbortController().signal);
          return new Promise<string | undefined>((resolve) => {
            let text = '';
            conn.on('data', (b: Buffer) => (text += b.toString()));
            conn.on('end', () => resolve(text || undefined));
            conn.on('error', () => resolve(undefined));
            conn.end('ping in the netns');
          });
        });
        assert.equal(received, 'ping in the netns');
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it('rejects an unknown pod with NOT_FOUND', async () => {
      await assert.rejects(
        backends.portForward.portForward('f'.repeat(64), 80, new AbortController().signal),
        (e: unknown) => e instanceof BerthError && e.kind === 'NOT_FOUND',
      );
    });
  });
});

