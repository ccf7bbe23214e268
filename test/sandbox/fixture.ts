// Shared set-up for the sandbox tests: builds berth-pinns, gives each suite a
// temporary root/state and a unique cgroup parent, and checks that nothing
// is left behind.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultConfig, type BerthConfig } from '../../src/config/config';
import { silentLogger } from '../../src/log/logger';
import { RuntimeHandlerRegistry } from '../../src/runtime/handlers';
import { detectCgroupLayout } from '../../src/cgroups/cgroups';
import { mountsUnder } from '../../src/util/mountinfo';
import { NamespacePinner } from '../../src/sandbox/namespaces/pinner';
import { SandboxService, type SandboxServiceOptions } from '../../src/sandbox/service';
import { ContainerEventBus } from '../../src/container/events';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';
import type { PodNetwork } from '../../src/sandbox/cni_adapter';
import type { PodContainers } from '../../src/sandbox/teardown';
import type { PodSandboxConfig__Output } from '../../src/gen/runtime/v1/PodSandboxConfig';
import type { CriContext } from '../../src/cri/context';
import { runPodSandbox } from '../../src/cri/sandbox_run';
import { testCriContext } from '../helpers/cri_context';

/** Pods get their own network namespace but no interfaces. */
export const NO_NETWORK: PodNetwork = {
  setupPodNetwork: async () => ({ ips: [] }),
  teardownPodNetwork: async () => undefined,
};

/** A berthd side with no containers in any pod. */
export const NO_CONTAINERS: PodContainers = {
  stopContainersOfPod: async () => undefined,
  removeContainersOfPod: async () => undefined,
};

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const PINNS = path.join(REPO, 'build', 'berth-pinns');

export function buildPinns(): void {
  execFileSync('make', ['-s', '-C', path.join(REPO, 'src', 'pinns'), `OUT=${path.join(REPO, 'build')}`], { stdio: 'pipe' });
}

export class SandboxFixture {
  dir = '';
  readonly config: BerthConfig = defaultConfig();
  readonly cgroupParent = `/berth-test-${randomBytes(4).toString('hex')}`;
  readonly handlers = new RuntimeHandlerRegistry(this.config);
  readonly services: SandboxService[] = [];

  /** Creates the temporary directory (in a hook, so a suite filtered out by --grep leaves nothing). */
  async init(): Promise<void> {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-sandbox-'));
    this.config.root = path.join(this.dir, 'root');
    this.config.state = path.join(this.dir, 'state');
    buildPinns();
    await this.handlers.probe();
  }

  async service(extra: Partial<SandboxServiceOptions> = {}): Promise<SandboxService> {
    const svc = new SandboxService({
      config: this.config,
      logger: silentLogger(),
      handlers: this.handlers,
      pinner: new NamespacePinner(PINNS),
      defaultCgroupParent: this.cgroupParent,
      network: NO_NETWORK,
      containers: NO_CONTAINERS,
      events: new ContainerEventBus(),
      metrics: new RuntimeMetrics(new Registry()),
      ...extra,
    });
    await svc.load();
    this.services.push(svc);
    return svc;
  }

  /** Directories of the test's cgroup parent, one per hierarchy. */
  cgroupDirs(sub = ''): string[] {
    return detectCgroupLayout().hierarchies.map((h) => path.join(h.mountpoint, this.cgroupParent, sub));
  }

  mountsUnderDir(): string[] {
    return mountsUnder(this.dir).map((m) => m.mountPoint);
  }

  /** Removes every pod, then anything a failed test left; returns what had to be force-cleaned. */
  async cleanup(): Promise<string[]> {
    const leftovers: string[] = [];
    if (!this.dir) return leftovers;
    for (const svc of this.services) {
      for (const rec of svc.store.list()) {
        try {
          await svc.remove(rec.id);
        } catch (err) {
          leftovers.push(`remove ${rec.id}: ${String(err)}`);
        }
      }
      await svc.close();
    }
    for (const m of this.mountsUnderDir().sort().reverse()) {
      leftovers.push(`mount ${m}`);
      execFileSync('umount', ['-l', m]);
    }
    for (const d of this.cgroupDirs()) {
      if (!fs.existsSync(d)) continue;
      for (const sub of fs.readdirSync(d, { withFileTypes: true })) {
        if (sub.isDirectory()) {
          leftovers.push(`cgroup ${path.join(d, sub.name)}`);
          fs.rmdirSync(path.join(d, sub.name));
        }
      }
      fs.rmdirSync(d);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return leftovers;
  }
}

let counter = 0;

/** A pod config as the kubelet would send it (pid namespace per container, like the kubelet's default). */
export function podConfig(overrides: Partial<PodSandboxConfig__Output> = {}, name?: string): PodSandboxConfig__Output {
  counter += 1;
  const n = name ?? `pod-${counter}`;
  return {
    metadata: { name: n, namespace: 'default', uid: `uid-${n}-${process.pid}`, attempt: 0 },
    hostname: n,
    logDirectory: '',
    dnsConfig: null,
    portMappings: [],
    labels: { app: n },
    annotations: {},
    linux: {
      cgroupParent: '',
      securityContext: {
        namespaceOptions: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', targetId: '', usernsOptions: null },
        selinuxOptions: null,
        runAsUser: null,
        readonlyRootfs: false,
        supplementalGroups: [],
        privileged: false,
        seccompProfilePath: '',
        runAsGroup: null,
        seccomp: null,
        apparmor: null,
        supplementalGroupsPolicy: 'Merge',
      },
      sysctls: {},
      overhead: null,
      resources: null,
    },
    windows: null,
    ...overrides,
  };
}

export function nsenter(args: string[]): string {
  return execFileSync('nsenter', args, { encoding: 'utf8' }).trim();
}

/** A CRI context with just the sandbox service, for the pod RPC modules. */
export function podContext(svc: SandboxService): CriContext {
  return testCriContext({ sandboxes: svc });
}

/** RunPodSandbox through the CRI module (its request checks included); the new pod's id. */
export async function runPod(svc: SandboxService, config: PodSandboxConfig__Output | null, runtimeHandler = ''): Promise<string> {
  return (await runPodSandbox(podContext(svc), { config, runtimeHandler })).podSandboxId ?? '';
}
