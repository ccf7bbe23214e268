// berth-pinns makes the pod's state directories it pins into (RunPodSandbox
// does not wait for them); unpinning runs it only while something is pinned;
// killPause returns only once berth-pause, and with it the pod PID namespace,
// is gone.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killPause } from '../../src/sandbox/namespaces/pause';
import { NamespacePinner } from '../../src/sandbox/namespaces/pinner';
import { buildPinns, PINNS } from './fixture';

function gone(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('berth-pinns directories, unpin and killPause', function () {
  this.timeout(20_000);
  let base = '';
  const pinner = new NamespacePinner(PINNS);

  before(() => buildPinns());
  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-pinpause-'));
  });
  afterEach(async () => {
    const stateDir = path.join(base, 'pod');
    await pinner.unpin(path.join(stateDir, 'ns'), path.join(stateDir, 'shm'));
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('makes the state directory, ns/ and shm/ it pins into, and kills berth-pause waiting until it is gone', async () => {
    const stateDir = path.join(base, 'pod');
    const nsDir = path.join(stateDir, 'ns');
    const shmPath = path.join(stateDir, 'shm');
    const pinned = await pinner.pin({ nsDir, net: false, ipc: true, uts: false, pid: true, sysctls: {}, cgroupProcs: [], shm: { path: shmPath, sizeBytes: 1 << 20 } });
    assert.equal(fs.statSync(stateDir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(nsDir).mode & 0o777, 0o700);
    assert.ok(fs.existsSync(path.join(nsDir, 'ipc')) && fs.existsSync(path.join(nsDir, 'pid')));
    assert.equal(fs.statfsSync(shmPath).type, 0x01021994, 'shm is a tmpfs');
    const pid = pinned.pausePid;
    assert.ok(pid !== undefined);
    // A process in the pod PID namespace: berth-pause's death takes it along.
    const member = spawn('nsenter', [`--pid=${path.join(nsDir, 'pid')}`, '--', 'sleep', '60'], { stdio: 'ignore' });
    const memberExited = new Promise((r) => member.once('exit', r));
    await new Promise((r) => member.once('spawn', r));
    await killPause({ pausePid: pid, stateDir, nsPaths: pinned.nsPaths });
    assert.ok(gone(pid), 'berth-pause is gone when killPause returns');
    await memberExited;
    // Killing it again, gone already, is fine.
    await killPause({ pausePid: pid, stateDir, nsPaths: pinned.nsPaths });
  });

  it('unpins by running berth-pinns only while something is pinned or mounted', async () => {
    const stateDir = path.join(base, 'pod');
    const nsDir = path.join(stateDir, 'ns');
    const shmPath = path.join(stateDir, 'shm');
    const noHelper = new NamespacePinner(path.join(base, 'no-such-berth-pinns'));
    await noHelper.unpin(nsDir, shmPath); // nothing there at all
    await pinner.pin({ nsDir, net: false, ipc: true, uts: false, pid: false, sysctls: {}, cgroupProcs: [], shm: { path: shmPath, sizeBytes: 1 << 20 } });
    await assert.rejects(noHelper.unpin(nsDir, shmPath), /berth-pinns|ENOENT|no-such/);
    await pinner.unpin(nsDir, shmPath);
    assert.deepEqual(fs.readdirSync(nsDir), []);
    // Directories left, nothing pinned or mounted in them: no helper needed.
    await noHelper.unpin(nsDir, shmPath);
  });

  it('does not kill a process that is not the pod berth-pause', async () => {
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      await new Promise((r) => stranger.once('spawn', r));
      const pid = stranger.pid!;
      await killPause({ pausePid: pid, stateDir: path.join(base, 'pod'), nsPaths: {} });
      assert.equal(gone(pid), false);
    } finally {
      stranger.kill('SIGKILL');
    }
  });
});
