// The pod files: which pods need them durable, and writing them new
// (content, mode 0644, never over an existing file, every write settled first).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { podFilesOutliveReboot, writeNewPodFiles } from '../../src/sandbox/pod_files';
import type { SandboxRecord } from '../../src/sandbox/record';

type Modes = SandboxRecord['namespaceModes'];
const modes = (network: string, ipc: string, pid: string): Modes => ({ network, ipc, pid }) as Modes;

describe('sandbox/pod_files', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-podfiles-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps the files of a pod durable only when the pod outlives a reboot (no namespace of its own, no berth-pause)', () => {
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('NODE', 'NODE', 'NODE') }), true);
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('NODE', 'NODE', 'CONTAINER') }), true);
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('POD', 'NODE', 'NODE') }), false);
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('NODE', 'POD', 'NODE') }), false);
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('NODE', 'NODE', 'POD') }), false);
    const userns = { uids: [{ containerId: 0, hostId: 100000, length: 65536 }], gids: [{ containerId: 0, hostId: 100000, length: 65536 }] };
    assert.equal(podFilesOutliveReboot({ namespaceModes: modes('NODE', 'NODE', 'NODE'), userns }), false);
  });

  for (const durable of [false, true]) {
    it(`writes new files with their content and mode 0644 (${durable ? 'durable' : 'not fsynced'})`, async () => {
      const files = [
        { file: path.join(dir, 'hostname'), data: 'web\n' },
        { file: path.join(dir, 'hosts'), data: '127.0.0.1\tlocalhost\n' },
      ];
      await writeNewPodFiles(files, durable);
      for (const f of files) {
        assert.equal(fs.readFileSync(f.file, 'utf8'), f.data);
        assert.equal(fs.statSync(f.file).mode & 0o777, 0o644);
      }
      assert.deepEqual(fs.readdirSync(dir).sort(), ['hostname', 'hosts'], 'no temp files');
    });
  }

  it('refuses to write over an existing file, after the other writes have settled', async () => {
    fs.writeFileSync(path.join(dir, 'hosts'), 'old\n');
    await assert.rejects(
      writeNewPodFiles(
        [
          { file: path.join(dir, 'hosts'), data: 'new\n' },
          { file: path.join(dir, 'hostname'), data: 'web\n' },
        ],
        false,
      ),
      /EEXIST/,
    );
    assert.equal(fs.readFileSync(path.join(dir, 'hosts'), 'utf8'), 'old\n');
    assert.equal(fs.readFileSync(path.join(dir, 'hostname'), 'utf8'), 'web\n');
  });
});
