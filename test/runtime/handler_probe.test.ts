// The functional runtime-handler probe: a minimal container created (through
// berth-shim) and deleted with the real runc, and runtimes that cannot create
// or hang, each leaving nothing behind: no temp dir, no cgroup, no runtime
// state, no process.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { parseConfig } from '../../src/config/config';
import { probeContainerCreate, probeUsernsSupport } from '../../src/runtime/handler_probe';
import { RuntimeHandlerRegistry } from '../../src/runtime/handlers';

/** A runtime that answers --version but fails (or, with `hang`, never finishes) create. */
function fakeRuntime(dir: string, name: string, create: 'fail' | 'hang'): string {
  const file = path.join(dir, name);
  const onCreate = create === 'fail' ? 'echo "no containers on this host" >&2; exit 1' : 'while :; do sleep 1; done';
  fs.writeFileSync(
    file,
    [
      '#!/bin/sh',
      'for a in "$@"; do',
      '  case "$a" in',
      '    --version) echo "fake-runtime 0.1"; exit 0 ;;',
      `    create) ${onCreate} ;;`,
      '    delete) echo "container does not exist" >&2; exit 1 ;;',
      '  esac',
      'done',
      'exit 1',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return file;
}

/** Every directory a cgroupfs path would have on this host, hybrid cgroup2 mirror included. */
function cgroupDirs(cgroupPath: string): string[] {
  const layout = detectCgroupLayout();
  const mounts = layout.hierarchies.map((h) => h.mountpoint);
  if (layout.version === 1 && layout.hybridUnified) mounts.push(layout.hybridUnified);
  return mounts.map((m) => path.join(m, cgroupPath));
}

/** Pids of live (non-zombie) processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function mountsUnderPath(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
}

function assertNothingLeft(workDir: string, cgroupPath: string): void {
  assert.ok(!fs.existsSync(workDir), `${workDir} is removed (bundle, rootfs, runtime --root, shim dir)`);
  for (const dir of cgroupDirs(cgroupPath)) assert.ok(!fs.existsSync(dir), `cgroup ${dir} is removed`);
  assert.deepEqual(processesMentioning(workDir), [], 'no shim or runtime process is left');
}

describe('runtime handler functional probe', function () {
  this.timeout(60000);
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-handler-probe-'));
    // As a state dir must be for pods in user namespaces (their root reaches the rootfs through it).
    fs.chmodSync(tmp, 0o711);
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('creates and deletes a container with the real runc and leaves nothing behind', async () => {
    const workDir = path.join(tmp, 'state', 'probe');
    const cgroupPath = `/berth-probe-test-${process.pid}-runc`;
    const result = await probeContainerCreate('runc', { workDir, cgroupPath });
    assert.deepEqual(result, { ok: true });
    assertNothingLeft(workDir, cgroupPath);
  });

  it('reports a runtime that cannot create a container with the runtime\'s own message, leaving nothing', async () => {
    const binary = fakeRuntime(tmp, 'nocreate', 'fail');
    const workDir = path.join(tmp, 'state', 'probe');
    const cgroupPath = `/berth-probe-test-${process.pid}-fail`;
    const result = await probeContainerCreate(binary, { workDir, cgroupPath });
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.stage === 'create');
    assert.match(result.message, /no containers on this host/);
    assertNothingLeft(workDir, cgroupPath);
  });

  it('gives up on a runtime whose create hangs, within the time bound, killing it', async () => {
    const binary = fakeRuntime(tmp, 'hangs', 'hang');
    const workDir = path.join(tmp, 'state', 'probe');
    const cgroupPath = `/berth-probe-test-${process.pid}-hang`;
    const result = await probeContainerCreate(binary, { workDir, cgroupPath, timeoutMs: 1000 });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.message, /did not finish within 1000 ms/);
    assertNothingLeft(workDir, cgroupPath);
    assert.deepEqual(processesMentioning(binary), [], 'the hanging runtime is killed');
  });

  it('runs a container in a pinned user namespace with an idmapped overlay rootfs (and on the host network), leaving nothing', async () => {
    const state = path.join(tmp, 'state');
    const workDir = path.join(state, 'probe-userns');
    const cgroupPath = `/berth-probe-test-${process.pid}-userns`;
    const result = await probeUsernsSupport('runc', { workDir, cgroupPath, ownedDir: state });
    assert.deepEqual(result, { ok: true, problem: '', hostNetwork: true, hostNetworkProblem: '' });
    assertNothingLeft(workDir, cgroupPath);
    assert.deepEqual(mountsUnderPath(tmp), [], 'no overlay, idmapped or nsfs mount is left');
  });

  it('a runtime that cannot create reports no user namespace support, with its message', async () => {
    const binary = fakeRuntime(tmp, 'nocreate', 'fail');
    const state = path.join(tmp, 'state');
    const workDir = path.join(state, 'probe-userns');
    const result = await probeUsernsSupport(binary, { workDir, cgroupPath: `/berth-probe-test-${process.pid}-unsfail`, ownedDir: state });
    assert.equal(result.ok, false);
    assert.equal(result.hostNetwork, false);
    assert.match(result.problem, /cannot create a container in a user namespace: .*no containers on this host/);
    assert.deepEqual(mountsUnderPath(tmp), []);
    assert.ok(!fs.existsSync(workDir));
  });

  it('the registry marks a handler that cannot create containers not ok, and keeps the old checks', async () => {
    const nocreate = fakeRuntime(tmp, 'nocreate', 'fail');
    const state = path.join(tmp, 'state');
    const config = parseConfig(
      [
        `state = ${JSON.stringify(state)}`,
        `root = ${JSON.stringify(path.join(tmp, 'root'))}`,
        '[runtime.handlers.nocreate]',
        `path = ${JSON.stringify(nocreate)}`,
        '[runtime.handlers.missing]',
        'path = "/nonexistent/runtime"',
        '[runtime.handlers.notaruntime]',
        'path = "/bin/false"',
        '',
      ].join('\n'),
    );
    const registry = new RuntimeHandlerRegistry(config);
    await registry.probe();
    const byName = new Map(registry.list().map((h) => [h.name, h]));
    assert.equal(byName.get('runc')?.ok, true, byName.get('runc')?.problem);
    const bad = byName.get('nocreate');
    assert.equal(bad?.ok, false);
    assert.match(bad?.problem ?? '', /^runtime handler "nocreate": cannot create a container on this host: .*no containers on this host/);
    assert.equal(bad?.version, 'fake-runtime 0.1');
    assert.match(byName.get('missing')?.problem ?? '', /binary "\/nonexistent\/runtime" not found/);
    assert.match(byName.get('notaruntime')?.problem ?? '', /"\/bin\/false --version" failed/);
    assert.throws(() => registry.get('nocreate'), /cannot create a container on this host/);
    // User namespaces: probed for the handler that works only, and true on this host (kernel 6.x, runc 1.1.5).
    assert.equal(byName.get('runc')?.userNamespaces?.ok, true, byName.get('runc')?.userNamespaces?.problem);
    assert.equal(bad?.userNamespaces, undefined);
    assert.ok(!fs.existsSync(path.join(state, 'probe-userns')), 'the user namespace probe directory is removed');
    assert.ok(!fs.existsSync(path.join(state, 'probe')), 'the probe directory is removed');
    assert.deepEqual(processesMentioning(path.join(state, 'probe')), []);
  });
});
