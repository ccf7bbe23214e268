// berth-exec's RUN frame and the pool of supervisors started ahead of need
// (by berth-launch, which hands their sockets over Node's IPC channel, or by
// this process where there is no berth-launch), driven through a stand-in runtime (a shell script that does what
// `runc exec --detach` does for the supervisor: start a process, write its
// pid file, exit), so no container is needed.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError, internal } from '../../src/errors';
import { execSupervisorPath, startSupervisedExec, SupervisorPool, type SupervisedExecSpawn } from '../../src/runtime/exec_supervisor';
import { findHelper } from '../../src/runtime/handlers';
import { launcherPid, useLauncher } from '../../src/util/launch';

const LAUNCHER = findHelper('berth-launch', 'BERTH_LAUNCH');

// The process prints the process JSON it was given and exits 7; "fail" in it makes the runtime refuse, with a logged error.
const FAKE_RUNTIME = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --pid-file) pid="$2"; shift ;;
    --process) proc="$2"; shift ;;
    --log) log="$2"; shift ;;
  esac
  shift
done
case "$(cat "$proc")" in *fail*) echo '{"level":"error","msg":"the runtime refuses"}' > "$log"; exit 1 ;; esac
(cat "$proc"; exit 7) &
echo $! > "$pid"
`;

function collect(r: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    r.on('data', (d: Buffer) => (text += d.toString()));
    r.on('close', () => resolve(text));
  });
}

function statOf(pid: string | number): { state: string; ppid: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** Supervisors of other tests' launchers, present before each test here. */
let others = new Set<number>();

/** Live supervisors our launcher started (its children running `berth-exec --control-fd`), or this process did. */
function supervisorChildren(parent: 'launcher' | 'self' = 'launcher'): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = statOf(e);
    if (!st || st.state === 'Z' || (parent === 'launcher' ? statOf(st.ppid)?.ppid : st.ppid) !== process.pid) continue;
    try {
      if (!others.has(Number(e)) && fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes('--control-fd')) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('runtime/exec_supervisor: berth-exec started ahead of need', () => {
  let tmp: string;
  let scratch: string;
  let pool: SupervisorPool;
  let opts: SupervisedExecSpawn;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-exec-sup-'));
    fs.writeFileSync(path.join(tmp, 'runtime'), FAKE_RUNTIME, { mode: 0o755 });
    useLauncher(LAUNCHER);
  });
  after(() => {
    useLauncher(undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    others = new Set();
    others = new Set(supervisorChildren());
    scratch = fs.mkdtempSync(path.join(tmp, 'scratch-'));
    pool = new SupervisorPool();
    opts = {
      runtime: path.join(tmp, 'runtime'),
      sealedCopy: false,
      runtimeRoot: path.join(tmp, 'root'),
      containerId: 'c1',
      tmpDir: scratch,
      tty: false,
      stdin: false,
      runtimeErrors: (lines) => lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
      toError: (message) => internal(message),
    };
  });
  afterEach(() => pool.close());

  it('runs what its RUN frame names, with the process JSON intact, reports the exit and leaves no scratch files', async () => {
    const spec = { args: ['x'], env: ['A=' + 'b'.repeat(200_000)], cwd: '/' };
    const ex = await startSupervisedExec(pool, opts, spec);
    const out = collect(ex.stdout);
    assert.ok(((await ex.pid) ?? 0) > 1);
    assert.equal(await ex.exited, 7);
    assert.equal(await out, JSON.stringify(spec));
    assert.deepEqual(fs.readdirSync(scratch), []);
  });

  it('hands out the supervisor it started while the last exec ran, and replaces one that died', async () => {
    const first = await startSupervisedExec(pool, opts, { args: ['1'] });
    assert.equal(await first.exited, 7);
    const waiting = await until('a waiting supervisor', () => supervisorChildren().find((p) => p !== first.supervisor.pid));
    const second = await startSupervisedExec(pool, opts, { args: ['2'] });
    assert.equal(second.supervisor.pid, waiting);
    assert.equal(await second.exited, 7);

    const next = await until('the next waiting supervisor', () => supervisorChildren().find((p) => p !== waiting));
    process.kill(next, 'SIGKILL');
    // Gone from /proc once the launcher reaped it; its report then reaches the pool.
    await until('the kill', () => (fs.existsSync(`/proc/${next}`) ? undefined : true));
    await new Promise((r) => setTimeout(r, 100));
    const third = await startSupervisedExec(pool, opts, { args: ['3'] });
    assert.notEqual(third.supervisor.pid, next);
    assert.equal(await third.exited, 7);
  });

  it('starts a new launcher when its launcher died', async () => {
    assert.equal(await (await startSupervisedExec(pool, opts, { args: ['1'] })).exited, 7);
    const launcher = await until('the launcher', launcherPid);
    await until('a waiting supervisor', () => (supervisorChildren().length ? true : undefined));
    process.kill(launcher, 'SIGKILL');
    await until('the launcher to go', () => (fs.existsSync(`/proc/${launcher}`) ? undefined : true));
    await new Promise((r) => setTimeout(r, 50)); // its waiting supervisor leaves too (PDEATHSIG)
    const second = await startSupervisedExec(pool, opts, { args: ['2'] });
    assert.equal(await second.exited, 7);
    assert.notEqual(launcherPid(), launcher);
  });

  it('starts the supervisors itself where there is no berth-launch', async () => {
    useLauncher(undefined);
    try {
      const ex = await startSupervisedExec(pool, opts, { args: ['direct'] });
      const out = collect(ex.stdout);
      assert.equal(await ex.exited, 7);
      assert.equal(await out, JSON.stringify({ args: ['direct'] }));
      // The pool's next supervisor is this process's child, not berth-launch's.
      await until('a waiting supervisor of its own', () => (supervisorChildren('self').length ? true : undefined));
    } finally {
      pool.close();
      useLauncher(LAUNCHER);
    }
  });

  it('lets its waiting supervisors go when closed', async () => {
    assert.equal(await (await startSupervisedExec(pool, opts, { args: ['1'] })).exited, 7);
    const waiting = await until('a waiting supervisor', () => (supervisorChildren().length ? supervisorChildren() : undefined));
    pool.close();
    await until('the supervisors to leave', () => (supervisorChildren().some((p) => waiting.includes(p)) ? undefined : true));
  });

  it("fails with the runtime's logged error, and leaves no scratch files", async () => {
    const ex = await startSupervisedExec(pool, opts, { args: ['fail'] });
    await assert.rejects(ex.exited, (err: unknown) => err instanceof BerthError && /the runtime refuses/.test(err.message));
    assert.equal(await ex.pid, null);
    assert.deepEqual(fs.readdirSync(scratch), []);
  });

  it('refuses a malformed RUN frame, and leaves quietly when berthd closes before sending one', async () => {
    const run = async (frame: string | null): Promise<{ code: number | null; control: string }> => {
      const child = spawn(execSupervisorPath(), ['--control-fd', '3'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
      const control = child.stdio[3] as Socket;
      control.on('error', () => undefined); // a reset when it exits without reading all we sent
      const text = collect(control);
      if (frame === null) control.end();
      else control.end(frame);
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      return { code, control: await text };
    };
    assert.deepEqual(await run(null), { code: 0, control: '' });
    const bad = await run('RUN 5 x\n');
    assert.equal(bad.code, 125);
    assert.match(bad.control, /^FAIL RUN: bad header/);
    const huge = await run(`RUN 7 ${32 << 20}\n`);
    assert.equal(huge.code, 125);
    assert.match(huge.control, /^FAIL RUN: 7 bytes of arguments and 33554432 of process JSON, over the limits/);
    const noId = await run(`RUN 7 2\n--root\0{}`);
    assert.equal(noId.code, 125);
    assert.match(noId.control, /^FAIL RUN: --root needs a value/);
  });
});
