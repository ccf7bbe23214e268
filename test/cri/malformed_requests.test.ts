// Malformed CRI requests (issue #16) against a real berthd over its socket:
// each once hung berthd or its connection, or left state behind. After them
// berthd must still answer at once, hold nothing from them, and restart
// without a failed rollback.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { CriClient } from '../../src/client/cri_client';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import type { SandboxRecord } from '../../src/sandbox/record';
import { TestBerthd } from '../helpers/berthd';
import { buildPinns } from '../sandbox/fixture';

const INVALID_ARGUMENT = 3;
/** Short enough that a hung call fails the test instead of the suite timing out. */
const CALL = { deadlineMs: 5000 };

/** The call's error; it must be INVALID_ARGUMENT with a short message matching `re`. */
async function invalid(call: Promise<unknown>, re: RegExp): Promise<grpc.ServiceError> {
  const err = (await call.then(
    () => assert.fail('the request was accepted'),
    (e: unknown) => e,
  )) as grpc.ServiceError;
  assert.equal(err.code, INVALID_ARGUMENT, err.message);
  assert.ok(Buffer.byteLength(err.details) <= 1024, `status message of ${Buffer.byteLength(err.details)} bytes`);
  assert.match(err.details, re);
  return err;
}

/** Version on the same connection, answered in well under the bound (a stalled connection never answers). */
async function answersVersion(cri: CriClient): Promise<void> {
  const t0 = Date.now();
  const v = await cri.runtime.Version({}, CALL);
  assert.equal(v.runtimeName, 'berth');
  assert.ok(Date.now() - t0 < 2000, `Version took ${Date.now() - t0} ms`);
}

function podConfig(uid: string, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
  return {
    metadata: { name: 'bad', namespace: 'malformed', uid, attempt: 0 },
    linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'CONTAINER', ipc: 'NODE' } } },
    ...extra,
  };
}

describe('malformed CRI requests (berthd, issue #16)', function () {
  this.timeout(120_000);
  let d: TestBerthd;
  const tag = randomBytes(4).toString('hex');
  const procMount = (): string => path.join(d.dir, 'proc');
  /** Cgroups the requests below must not leave (the default parent is /berth). */
  const leftovers = (): string[] =>
    detectCgroupLayout()
      .hierarchies.map((h) => path.join(h.mountpoint, 'berth', `podx${tag}`))
      .filter((p) => fs.existsSync(p));

  /** A connection of its own per test, so a stall one request causes shows in that test only. */
  let c: CriClient;

  before(async () => {
    buildPinns();
    d = await TestBerthd.start();
  });
  beforeEach(() => {
    c = new CriClient(d.socket);
  });
  afterEach(() => c.close());

  after(async () => {
    if (!d) return;
    try {
      execFileSync('umount', [procMount()], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    // A hung berthd (the bug) ignores SIGTERM.
    const stopped = await Promise.race([d.stop(), new Promise((r) => setTimeout(() => r('hung'), 5000))]);
    if (stopped === 'hung') await d.stop('SIGKILL');
    // What the unfixed berthd made from uid "x<tag>/y".
    for (const dir of leftovers()) {
      for (const sub of [path.join(dir, 'y'), dir]) {
        try {
          fs.rmdirSync(sub);
        } catch {
          // not there
        }
      }
    }
    await d.cleanup();
  });

  it('1: over-long ids, image names and pod CIDRs get INVALID_ARGUMENT and the connection stays usable', async () => {
    const rt = c.runtime;
    const id = 'é'.repeat(20_000); // 40 KB of non-ASCII
    await invalid(rt.ContainerStatus({ containerId: id }, CALL), /container_id is 40000 bytes long; at most 64/);
    await answersVersion(c);
    await invalid(c.image.PullImage({ image: { image: `registry.example/${'a'.repeat(40_000)}` } }, CALL), /image is \d+ bytes long/);
    await answersVersion(c);
    await invalid(
      rt.UpdateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: `10.0.0.0/8,${'1'.repeat(40_000)}` } } }, CALL),
      /pod_cidr is \d+ bytes long/,
    );
    await answersVersion(c);
    await invalid(rt.PodSandboxStatus({ podSandboxId: 'f'.repeat(65) }, CALL), /pod_sandbox_id is 65 bytes/);
  });

  it('1: a status message echoing request data is capped, and so is its log line', async () => {
    // A sysctl name is not an id, name or reference: it is echoed in full by its check.
    const err = await invalid(
      c.runtime.RunPodSandbox({ config: podConfig(`u${tag}`, { linux: { sysctls: { [`é${'x'.repeat(40_000)}`]: '1' } } }) }, CALL),
      /not a valid sysctl name|cut from \d+ bytes/,
    );
    assert.match(err.details, /cut from \d+ bytes\)$/);
    await answersVersion(c);
    const longest = Math.max(...d.output.split('\n').map((l) => Buffer.byteLength(l)));
    assert.ok(longest < 16_384, `berthd logged a line of ${longest} bytes`);
  });

  it('3: an over-long pod uid or cgroup component is refused before anything is made', async () => {
    const rt = c.runtime;
    await invalid(rt.RunPodSandbox({ config: podConfig('u'.repeat(300)) }, CALL), /metadata\.uid is 300 bytes long; at most 128/);
    await invalid(
      rt.RunPodSandbox({ config: podConfig(`c${tag}`, { linux: { cgroupParent: `/berth/${'c'.repeat(300)}` } }) }, CALL),
      /component longer than 255 bytes/,
    );
    await invalid(rt.RunPodSandbox({ config: podConfig(`n${tag}`, { metadata: { name: 'n'.repeat(254), namespace: 'x', uid: `n${tag}` } }) }, CALL), /metadata\.name is 254 bytes/);
    assert.deepEqual((await rt.ListPodSandbox({}, CALL)).items, []);
  });

  it('4: a pod uid with "/" or ".." never reaches a path', async () => {
    const rt = c.runtime;
    await invalid(rt.RunPodSandbox({ config: podConfig(`x${tag}/y`) }, CALL), /metadata\.uid may hold only/);
    await invalid(rt.RunPodSandbox({ config: podConfig('..') }, CALL), /metadata\.uid may hold only/);
    await invalid(rt.RunPodSandbox({ config: podConfig(`v${tag}`, { metadata: { name: 'a/b', namespace: 'x', uid: `v${tag}` } }) }, CALL), /metadata\.name must not contain/);
    assert.deepEqual(leftovers(), []);
  });

  it('5: a malformed image reference is INVALID_ARGUMENT naming it', async () => {
    for (const ref of ['localhost:99999/app', '[1:2]/app:v1']) {
      const err = await invalid(c.image.PullImage({ image: { image: ref } }, CALL), /invalid image reference/);
      assert.ok(err.details.includes(`"${ref}"`), err.details);
    }
  });

  // Last of the requests: the unfixed berthd never answers again after it.
  it('2: a log_directory on a pseudo-filesystem is refused, and berthd stays responsive', async () => {
    const rt = c.runtime;
    await invalid(rt.RunPodSandbox({ config: podConfig(`p1${tag}`, { logDirectory: '/proc/1/x' }) }, CALL), /under \/proc/);
    await answersVersion(c);
    await invalid(rt.RunPodSandbox({ config: podConfig(`p2${tag}`, { logDirectory: '/var/log/../../sys/x' }) }, CALL), /under \/sys/);
    // Through a symlink, and a procfs mounted elsewhere (found by its filesystem type).
    const link = path.join(d.dir, 'to-proc');
    fs.symlinkSync('/proc/self', link);
    await invalid(rt.RunPodSandbox({ config: podConfig(`p3${tag}`, { logDirectory: `${link}/x` }) }, CALL), /resolves to \/proc/);
    fs.mkdirSync(procMount());
    execFileSync('mount', ['-t', 'proc', 'proc', procMount()]);
    await invalid(
      rt.RunPodSandbox({ config: podConfig(`p4${tag}`, { logDirectory: `${procMount()}/1/x` }) }, CALL),
      /is on a proc filesystem/,
    );
    execFileSync('umount', [procMount()]);
    // A container's log_path may not climb out of the pod's log directory.
    await invalid(
      rt.CreateContainer(
        { podSandboxId: 'f'.repeat(64), config: { metadata: { name: 'c' }, image: { image: 'busybox' }, logPath: '../../../proc/1/x/0.log' } },
        CALL,
      ),
      /log_path .* must stay inside/,
    );
    await answersVersion(c);
  });

  it('after all of them: nothing stored, no cgroups, a clean restart that empties <state>/tmp', async () => {
    await answersVersion(c);
    assert.deepEqual((await c.runtime.ListPodSandbox({}, CALL)).items, []);
    assert.deepEqual(leftovers(), []);
    const podRecords = path.join(d.root, 'pods');
    assert.deepEqual(fs.readdirSync(podRecords).filter((f) => f.endsWith('.json')), []);

    // kill -9 mid-call leaves scratch files in <state>/tmp; and an older berthd
    // could leave a pod record whose rollback failed on an over-long cgroup name.
    await d.stop('SIGKILL');
    const stale = path.join(d.state, 'tmp', 'runc-exec-stale');
    fs.mkdirSync(stale, { recursive: true });
    fs.writeFileSync(path.join(stale, 'process.json'), '{}');
    const id = randomBytes(32).toString('hex');
    const stuck: SandboxRecord = {
      id,
      metadata: { name: 'stuck', uid: 'u'.repeat(300), namespace: 'malformed', attempt: 0 },
      state: 'creating',
      createdAt: String(Date.now() * 1e6),
      runtimeHandler: 'runc',
      config: podConfig('stuck') as SandboxRecord['config'],
      namespaceModes: { network: 'NODE', pid: 'CONTAINER', ipc: 'NODE' },
      nsPaths: {},
      stateDir: path.join(d.state, 'pods', id),
      filesDir: path.join(podRecords, id),
      hostnameFile: path.join(podRecords, id, 'hostname'),
      hostsFile: path.join(podRecords, id, 'hosts'),
      resolvConfFile: path.join(podRecords, id, 'resolv.conf'),
      hostname: 'stuck',
      cgroup: { path: `/berth/pod${'u'.repeat(300)}`, createdByBerth: true },
      network: { ip: '', additionalIps: [] },
      networkAttached: false,
    };
    fs.writeFileSync(path.join(podRecords, `${id}.json`), JSON.stringify(stuck));

    await d.launch();
    await answersVersion(d.cri);
    assert.doesNotMatch(d.output, /rollback[^\n]*(failed|incomplete)/i);
    assert.match(d.output, /rolling back a pod sandbox left half-created/);
    assert.deepEqual(fs.readdirSync(podRecords).filter((f) => f.endsWith('.json')), []);
    assert.deepEqual(fs.readdirSync(path.join(d.state, 'tmp')), []);
  });
});
