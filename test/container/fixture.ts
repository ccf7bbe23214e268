// A real berthd with a real registry holding a busybox image the test builds
// from Debian's busybox-static, for the container lifecycle tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestBerthd } from '../helpers/berthd';
import { makeLayer, Pusher, TestRegistry } from '../helpers/registry';
import type { PodSandboxConfig } from '../../src/gen/runtime/v1/PodSandboxConfig';
import type { ContainerConfig } from '../../src/gen/runtime/v1/ContainerConfig';

const APPLETS = [
  'sh', 'sleep', 'echo', 'cat', 'id', 'ls', 'touch', 'env', 'pwd', 'true', 'false', 'head', 'dd', 'grep',
  'readlink', 'hostname', 'printf', 'trap', 'kill', 'ps', 'mkdir', 'rm', 'wc', 'tr', 'seq', 'yes', 'test',
  'tty', 'stty', 'nc',
];

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n';
export const GROUP = 'root:x:0:\nwheel:x:10:app\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n';

export interface ContainerFixture {
  berthd: TestBerthd;
  registry: TestRegistry;
  /** Image reference pulled into berthd: busybox, Cmd sleep, StopSignal unset. */
  image: string;
  /** Same files, with StopSignal SIGUSR1, WorkingDir /work, User app, Env FOO=image. */
  image2: string;
  logDir: string;
  cleanup(): Promise<void>;
}

export interface ContainerFixtureOptions {
  /** Appended to berthd's config (e.g. extra runtime handlers). */
  configToml?: string;
  /** Gives pods a CNI network (none by default). */
  cniConfDir?: string;
  /** Serve /metrics (on berthd.metricsPort). */
  metrics?: boolean;
}

export async function startContainerFixture(opts: ContainerFixtureOptions = {}): Promise<ContainerFixture> {
  const registry = await TestRegistry.start();
  const files: Record<string, Buffer | string | { symlink: string } | { copyOf: string }> = {
    'bin/busybox': { copyOf: '/bin/busybox' },
    'etc/passwd': PASSWD,
    'etc/group': GROUP,
    'work/.keep': '',
    'home/app/.keep': '',
  };
  for (const a of APPLETS) files[`bin/${a}`] = { symlink: 'busybox' };
  const layer = makeLayer(files);
  const pusher = new Pusher(registry.host);
  await pusher.pushImage('test/busybox', '1', {
    layers: [layer],
    config: { Env: ['PATH=/bin', 'FOO=image'], Cmd: ['sleep', '3600'] },
  });
  await pusher.pushImage('test/busybox', 'custom', {
    layers: [layer],
    config: {
      Env: ['PATH=/bin', 'FOO=image', 'BAR=image'],
      Entrypoint: ['sh', '-c'],
      Cmd: ['sleep 3600'],
      WorkingDir: '/work',
      User: 'app',
      StopSignal: 'SIGUSR1',
    },
  });
  const berthd = await TestBerthd.start({
    metrics: opts.metrics,
    configToml: `[cni]\nconf_dir = ${JSON.stringify(opts.cniConfDir ?? '/nonexistent-berth-test-cni')}\n` + (opts.configToml ?? ''),
  });
  const image = `${registry.host}/test/busybox:1`;
  const image2 = `${registry.host}/test/busybox:custom`;
  await berthd.cri.image.PullImage({ image: { image } });
  await berthd.cri.image.PullImage({ image: { image: image2 } });
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-logs-'));
  return {
    berthd,
    registry,
    image,
    image2,
    logDir,
    async cleanup() {
      try {
        const pods = await berthd.cri.runtime.ListPodSandbox({});
        for (const p of pods.items) {
          await berthd.cri.runtime.StopPodSandbox({ podSandboxId: p.id });
          await berthd.cri.runtime.RemovePodSandbox({ podSandboxId: p.id });
        }
      } finally {
        await berthd.cleanup();
        await registry.stop();
        fs.rmSync(logDir, { recursive: true, force: true });
      }
    },
  };
}

let podCounter = 0;

/** A host-network pod (no CNI needed) with its own log directory. */
export function podConfig(fx: ContainerFixture, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
  const n = ++podCounter;
  return {
    metadata: { name: `pod${n}`, namespace: 'test', uid: `uid-${process.pid}-${n}`, attempt: 0 },
    logDirectory: path.join(fx.logDir, `pod${n}`),
    linux: { securityContext: { namespaceOptions: { network: 'NODE' } } },
    ...extra,
  };
}

export function containerConfig(image: string, name: string, extra: Partial<ContainerConfig> = {}): ContainerConfig {
  return { metadata: { name }, image: { image }, logPath: `${name}.log`, ...extra };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Creates and starts a container in a pod; resolves its id. */
export async function startContainer(
  fx: ContainerFixture,
  pod: { id: string; config: PodSandboxConfig },
  name: string,
  extra: Partial<ContainerConfig> = {},
  image = fx.image,
): Promise<string> {
  const rt = fx.berthd.cri.runtime;
  const { containerId } = await rt.CreateContainer({ podSandboxId: pod.id, config: containerConfig(image, name, extra), sandboxConfig: pod.config });
  await rt.StartContainer({ containerId });
  return containerId;
}
