// Offline images end to end: `berth images import` into a real berthd (no
// registry anywhere), a container run from the imported image through CRI in
// a host-network pod, `berth images export` and a re-import after removal.
import * as assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestBerthd } from '../helpers/berthd';
import { containerConfig, waitFor } from '../container/fixture';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import { busyboxImage, ociArchive } from './archives';

const BERTH_CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

/** Runs the berth CLI; `stdinFile` is piped to its stdin. */
function berth(d: TestBerthd, args: string[], stdinFile?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BERTH_CLI, '--socket', d.socket, '--state', d.state, ...args], (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (stdinFile && child.stdin) fs.createReadStream(stdinFile).pipe(child.stdin);
    else child.stdin?.end();
  });
}

describe('admin: offline images through a real berthd and the berth CLI', function () {
  this.timeout(60_000);
  let d: TestBerthd;
  let work: string;
  const img = busyboxImage('amd64', ['echo', 'offline and running']);

  before(async () => {
    d = await TestBerthd.start({
      configToml: ['[cni]', 'conf_dir = "/nonexistent-berth-test-cni"', '[image]', 'pinned_images = ["offline/app:1"]'].join('\n'),
    });
    work = fs.mkdtempSync(path.join(d.dir, 'work-'));
  });
  after(async () => {
    if (d) {
      try {
        const pods = await d.cri.runtime.ListPodSandbox({});
        for (const p of pods.items) {
          await d.cri.runtime.StopPodSandbox({ podSandboxId: p.id });
          await d.cri.runtime.RemovePodSandbox({ podSandboxId: p.id });
        }
      } finally {
        await d.cleanup();
      }
    }
  });

  it('imports with the CLI, runs a container from the image, exports and re-imports it', async () => {
    const adminSocket = path.join(d.state, 'admin.sock');
    assert.ok(fs.existsSync(adminSocket), 'berthd serves <state>/admin.sock (startAdminServer wired in daemon.ts)');
    assert.equal(fs.statSync(adminSocket).mode & 0o777, 0o600);

    const version = await berth(d, ['version']);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /RuntimeName: berth/);

    const file = path.join(work, 'app.tar');
    ociArchive(work, img, 'offline/app:1', file);
    const imported = await berth(d, ['images', 'import', file]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, new RegExp(`imported ${img.configDigest} docker.io/offline/app:1`));

    const st = await d.cri.image.ImageStatus({ image: { image: 'offline/app:1' } });
    assert.equal(st.image?.id, img.configDigest);
    assert.equal(st.image?.pinned, true);
    const ls = await berth(d, ['images', 'ls']);
    assert.match(ls.stdout, new RegExp(`^docker\\.io/offline/app +1 +${img.configDigest.slice(7, 19)} +[\\d.]+ [kM]?B +pinned$`, 'm'));

    const logDir = path.join(work, 'logs');
    const pod: PodSandboxConfig = {
      metadata: { name: 'offline', namespace: 'test', uid: `offline-${process.pid}`, attempt: 0 },
      logDirectory: logDir,
      linux: { securityContext: { namespaceOptions: { network: 'NODE' } } },
    };
    const { podSandboxId } = await d.cri.runtime.RunPodSandbox({ config: pod });
    const { containerId } = await d.cri.runtime.CreateContainer({
      podSandboxId,
      config: containerConfig('offline/app:1', 'app'),
      sandboxConfig: pod,
    });
    await d.cri.runtime.StartContainer({ containerId });
    const status = await waitFor('container exit', async () => {
      const s = await d.cri.runtime.ContainerStatus({ containerId, verbose: false });
      return s.status?.state === 'CONTAINER_EXITED' ? s.status : undefined;
    });
    assert.equal(status.exitCode, 0);
    assert.equal(status.imageId, img.configDigest);
    assert.match(fs.readFileSync(path.join(logDir, 'app.log'), 'utf8'), /stdout F offline and running/);
    await d.cri.runtime.RemoveContainer({ containerId });

    const out = path.join(work, 'exported.tar');
    const exported = await berth(d, ['images', 'export', '-o', out, 'offline/app:1']);
    assert.equal(exported.code, 0, exported.stderr);
    await d.cri.image.RemoveImage({ image: { image: 'offline/app:1' } });
    assert.equal((await d.cri.image.ImageStatus({ image: { image: 'offline/app:1' } })).image, null);

    const again = await berth(d, ['images', 'import', '-'], out);
    assert.equal(again.code, 0, again.stderr);
    const back = await d.cri.image.ImageStatus({ image: { image: 'offline/app:1' } });
    assert.equal(back.image?.id, img.configDigest);

    // Compressed archives: gzip (zlib) and zstd (the zstd command), detected by their magic bytes.
    for (const [ext, compress] of [
      ['gz', (f: string) => execFileSync('gzip', ['-k', '-f', f])],
      ['zst', (f: string) => execFileSync('zstd', ['-q', '-f', f, '-o', `${f}.zst`])],
    ] as const) {
      await d.cri.image.RemoveImage({ image: { image: 'offline/app:1' } });
      compress(out);
      const packed = await berth(d, ['images', 'import', `${out}.${ext}`]);
      assert.equal(packed.code, 0, packed.stderr);
      assert.match(packed.stdout, new RegExp(`imported ${img.configDigest}`));
      assert.equal((await d.cri.image.ImageStatus({ image: { image: 'offline/app:1' } })).image?.id, img.configDigest, ext);
    }
    const viaStdin = await berth(d, ['images', 'import', '-'], `${out}.zst`);
    assert.equal(viaStdin.code, 0, viaStdin.stderr);

    const missing = await berth(d, ['images', 'export', '-o', path.join(work, 'x.tar'), 'nothere:1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /image "nothere:1" not found/);
    assert.equal(fs.existsSync(path.join(work, 'x.tar')), false);
  });
});
