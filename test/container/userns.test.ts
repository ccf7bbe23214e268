// Pods in user namespaces through a real berthd and Debian's runc 1.1.5: the
// pod's namespaces are owned by its user namespace, containers join it, and
// the rootfs, volumes and pod files are idmapped by berth (runc 1.1 cannot),
// leaving the shared image layers untouched and no mount behind.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import type { CrashPointName } from '../../src/util/crashpoint';
import { TestBerthd } from '../helpers/berthd';
import { TestNetwork } from '../network/net_helpers';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

const HOST_UID = 300000;
const HOST_GID = 310000;
const MAPS = {
  uids: [{ containerId: 0, hostId: HOST_UID, length: 65536 }],
  gids: [{ containerId: 0, hostId: HOST_GID, length: 65536 }],
};
const USERNS = { mode: 'POD' as const, ...MAPS };

function mountpoints(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter(Boolean);
}

/** path, owner, mode and mtime of every file below dir: what "unchanged" means for a layer. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      out.push(`${path.relative(dir, p)} ${st.uid}:${st.gid} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

describe('pods in user namespaces (runc 1.1.5, idmapped mounts made by berth)', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  let net: TestNetwork;
  let berthd: TestBerthd;
  let base: string;
  let vol: string;
  const rt = () => berthd.cri.runtime;

  before(async () => {
    fx = await startContainerFixture();
    net = new TestNetwork();
    net.writeConflist();
    // The pod's root reaches the rootfs through the state dir: it must be searchable by others.
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-'));
    fs.chmodSync(base, 0o711);
    berthd = await TestBerthd.start({ dir: base, configToml: `[cni]\nconf_dir = ${JSON.stringify(net.confDir)}\nbin_dirs = ["/usr/lib/cni"]\n` });
    await berthd.cri.image.PullImage({ image: { image: fx.image } });
    vol = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-userns-vol-'));
    fs.writeFileSync(path.join(vol, 'host-file'), 'from the host\n');
    fs.chownSync(path.join(vol, 'host-file'), 0, 0);
    fs.chmodSync(vol, 0o777);
  });
  after(async () => {
    try {
      if (berthd) {
        await berthd.stop();
        await berthd.launch();
        for (const p of (await rt().ListPodSandbox({})).items) {
          await rt().StopPodSandbox({ podSandboxId: p.id });
          await rt().RemovePodSandbox({ podSandboxId: p.id });
        }
        await berthd.cleanup();
      }
    } finally {
      await net?.cleanup();
      await fx?.cleanup();
      if (vol) fs.rmSync(vol, { recursive: true, force: true });
    }
  });

  const usernsPod = (network: 'POD' | 'NODE', extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig =>
    podConfig(fx, { linux: { securityContext: { namespaceOptions: { network, pid: 'POD', usernsOptions: USERNS } } }, ...extra });

  /** The committed layers' directories, from the snapshotter's metadata. */
  function layerDirs(): string[] {
    const meta = JSON.parse(fs.readFileSync(path.join(berthd.root, 'snapshots', 'metadata.json'), 'utf8')) as {
      snapshots: Record<string, { id: number; kind: string }>;
    };
    return Object.values(meta.snapshots)
      .filter((s) => s.kind === 'committed')
      .map((s) => path.join(berthd.root, 'snapshots', 'snapshots', String(s.id), 'fs'));
  }

  async function run(podId: string, cfg: PodSandboxConfig, name: string, script: string, extra: Parameters<typeof containerConfig>[2] = {}) {
    const { containerId } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(fx.image, name, {
        command: ['sh', '-c', script],
        linux: { securityContext: { namespaceOptions: { network: cfg.linux?.securityContext?.namespaceOptions?.network, pid: 'POD', usernsOptions: USERNS } } },
        ...extra,
      }),
      sandboxConfig: cfg,
    });
    await rt().StartContainer({ containerId });
    return containerId;
  }

  async function logOf(cfg: PodSandboxConfig, name: string, until: string): Promise<string> {
    const file = path.join(cfg.logDirectory as string, `${name}.log`);
    return waitFor(`${name} output`, async () => {
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      const lines = text.split('\n').map((l) => l.split(' ').slice(3).join(' '));
      return lines.includes(until) ? lines.join('\n') : undefined;
    });
  }

  it('Status reports user namespaces for runc: its start-up probe ran one here', async () => {
    const st = await rt().Status({ verbose: false });
    const runc = st.runtimeHandlers.find((h) => h.name === 'runc');
    assert.equal(runc?.features?.userNamespaces, true);
  });

  it('a pod network pod: mapping, root inside, sysctls, hostname and pod files; owners inside and out; layers unchanged', async () => {
    const before = layerDirs().map(listing);
    const cfg = usernsPod('POD', { hostname: 'unspod' });
    cfg.linux!.sysctls = { 'net.ipv4.ip_unprivileged_port_start': '123', 'kernel.shmmax': '12345678' };
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    const script = [
      'cat /proc/self/uid_map /proc/self/gid_map',
      'echo id=$(id -u):$(id -g)',
      'echo host=$(hostname)',
      'echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) shm=$(cat /proc/sys/kernel/shmmax)',
      'echo ping=$(cat /proc/sys/net/ipv4/ping_group_range)',
      'for f in /bin/busybox /etc/passwd /etc/hosts /etc/resolv.conf /etc/hostname /dev/shm /vol/host-file; do echo "$f $(ls -nd $f | tr -s " " | cut -d" " -f3,4)"; done',
      'echo written > /vol/by-root && touch /work/upper-file && echo /dev/shm-ok > /dev/shm/x && cat /dev/shm/x',
      'echo done; sleep 3600',
    ].join('; ');
    const id = await run(podId, cfg, 'c', script, { mounts: [{ containerPath: '/vol', hostPath: vol }] });
    const out = await logOf(cfg, 'c', 'done');
    assert.match(out, /^\s+0\s+300000\s+65536$/m, 'uid_map');
    assert.match(out, /^\s+0\s+310000\s+65536$/m, 'gid_map');
    assert.match(out, /^id=0:0$/m);
    assert.match(out, /^host=unspod$/m);
    assert.match(out, /^port=123 shm=12345678$/m);
    assert.match(out, /^ping=0 65535$/m, 'unprivileged ICMP for the groups the pod maps (0 2147483647 is refused in a user namespace)');
    for (const f of ['/bin/busybox', '/etc/passwd', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname', '/dev/shm', '/vol/host-file']) {
      assert.match(out, new RegExp(`^${f} 0 0$`, 'm'), `${f} is owned by root inside`);
    }
    assert.match(out, /^\/dev\/shm-ok$/m);
    // Outside: the process runs as the mapped root; the image file shows the mapped owner through
    // the rootfs mount, but the layer on disk keeps root; the hostPath file and the root's write
    // through the idmapped volume are root's on the host (the volume's ids are the container's).
    const rootfs = path.join(berthd.state, 'containers', id, 'bundle', 'rootfs');
    const st = fs.statSync(path.join(rootfs, 'bin', 'busybox'));
    assert.deepEqual([st.uid, st.gid], [HOST_UID, HOST_GID]);
    const created = fs.statSync(path.join(rootfs, 'work', 'upper-file'));
    assert.deepEqual([created.uid, created.gid], [HOST_UID, HOST_GID], 'a new file in the upper dir is the mapped root\'s');
    const onHost = fs.statSync(path.join(vol, 'by-root'));
    assert.deepEqual([onHost.uid, onHost.gid], [0, 0]);
    assert.equal(fs.readFileSync(path.join(vol, 'by-root'), 'utf8'), 'written\n');
    assert.deepEqual([fs.statSync(path.join(vol, 'host-file')).uid], [0]);
    const s = await rt().ContainerStatus({ containerId: id, verbose: true });
    const pid = Number((JSON.parse(s.info.info ?? '{}') as { pid?: number }).pid ?? 0);
    assert.ok(pid > 0);
    assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /^Uid:\s+300000\s/m);
    // No idmapped copy stays mounted once the container is created.
    assert.deepEqual(mountpoints().filter((m) => m.includes(`${id}/idmap`)), []);
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
    assert.deepEqual(mountpoints().filter((m) => m.startsWith(berthd.state + '/')).filter((m) => !m.endsWith('/pods')), [], 'nothing left mounted');
    assert.deepEqual(layerDirs().map(listing), before, 'the image layers on disk are unchanged');
  });

  it('a user other than root writes through the idmapped volume with its own id; the host network works too', async () => {
    // Status advertises what this test then does (the probe ran it at start).
    assert.equal((await rt().Status({ verbose: false })).features?.userNamespacesHostNetwork, true);
    const cfg = usernsPod('NODE');
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    await run(podId, cfg, 'u', 'cat /proc/self/uid_map; echo n > /vol/by-1000; ls /sys/class/net >/dev/null && echo sys-ok; echo done; sleep 3600', {
      mounts: [{ containerPath: '/vol', hostPath: vol }],
      linux: {
        securityContext: { runAsUser: { value: 1000 }, namespaceOptions: { network: 'NODE', pid: 'POD', usernsOptions: USERNS } },
      },
    });
    const out = await logOf(cfg, 'u', 'done');
    assert.match(out, /^\s+0\s+300000\s+65536$/m);
    assert.match(out, /^sys-ok$/m);
    assert.equal(fs.statSync(path.join(vol, 'by-1000')).uid, 1000);
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
  });

  it('an idmapped volume by its own Mount mappings, in a pod without a user namespace', async () => {
    const cfg = podConfig(fx, { linux: { securityContext: { namespaceOptions: { network: 'NODE' } } } });
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    const m = { containerId: 0, hostId: 5000, length: 65536 };
    const { containerId } = await rt().CreateContainer({
      podSandboxId: podId,
      config: containerConfig(fx.image, 'm', {
        command: ['sh', '-c', 'ls -n /vol/host-file | tr -s " " | cut -d" " -f3,4; echo done; sleep 3600'],
        mounts: [{ containerPath: '/vol', hostPath: vol, uidMappings: [m], gidMappings: [m] }],
      }),
      sandboxConfig: cfg,
    });
    await rt().StartContainer({ containerId });
    const out = await logOf(cfg, 'm', 'done');
    assert.match(out, /^5000 5000$/m);
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
  });

  it('a create killed with the idmapped copies mounted: restart recovery detaches them', async () => {
    const point: CrashPointName = 'container-create:after-bundle';
    const cfg = usernsPod('NODE');
    const podId = (await rt().RunPodSandbox({ config: cfg })).podSandboxId;
    await berthd.stop();
    await berthd.launch({ BERTH_CRASH_AT: point });
    const died = new Promise<void>((r) => berthd.proc?.once('exit', () => r()));
    await assert.rejects(
      rt().CreateContainer({
        podSandboxId: podId,
        config: containerConfig(fx.image, 'k', { mounts: [{ containerPath: '/vol', hostPath: vol }], linux: { securityContext: { namespaceOptions: { network: 'NODE', pid: 'POD', usernsOptions: USERNS } } } }),
        sandboxConfig: cfg,
      }),
    );
    await died;
    const left = mountpoints().filter((p) => p.startsWith(path.join(berthd.state, 'containers') + '/') && p.includes('/idmap/'));
    assert.ok(left.length > 0, 'the killed create left idmapped copies mounted');
    await berthd.stop();
    await berthd.launch();
    assert.deepEqual(mountpoints().filter((p) => p.startsWith(path.join(berthd.state, 'containers') + '/')), [], `recovery removed them:\n${berthd.output}`);
    await rt().StopPodSandbox({ podSandboxId: podId });
    await rt().RemovePodSandbox({ podSandboxId: podId });
  });
});
