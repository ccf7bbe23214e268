// berthd's lifecycle: take the locks, open the state, serve CRI and metrics,
// and on SIGTERM/SIGINT drain and exit cleanly. Containers are never touched
// by a shutdown: they belong to their shims and outlive berthd.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as http from 'node:http';
import type { BerthConfig } from '../config/config';
import { createLogger, type Logger } from '../log/logger';
import { Metrics, serveMetrics } from '../metrics/metrics';
import { CriServer } from '../cri/server';
import { findHelper, RuntimeHandlerRegistry } from '../runtime/handlers';
import { useLauncher } from '../util/launch';
import { BERTH_VERSION } from '../version';
import { acquirePidLock, clearStaleSocket } from './lock';
import type { CriContext } from '../cri/context';
import { probeHost } from '../runtime/spec/host_info';
import { Snapshotter } from '../snapshotter/snapshotter';
import { ImageService } from '../image/service';
import { ProxyConfig } from '../registry/proxy';
import { CniManager } from '../network/cni';
import { SandboxService } from '../sandbox/service';
import type { PodContainers } from '../sandbox/teardown';
import { cniPodNetwork } from '../sandbox/cni_adapter';
import { ContainerService } from '../container/service';
import { containerStreamingBackends } from '../container/streaming_backends';
import { StreamingServer } from '../streaming/server';
import { startAdminServer, type AdminServer } from '../admin/server';
import { SystemdNotifier } from './sd_notify';
import { checkCgroupDriver, realDriverHost } from '../cgroups/driver';
import { SystemdManager } from '../cgroups/systemd/manager';
import { changedKeys, isReloadable } from './reload';
import { ContainerEventBus } from '../container/events';
import type { ContainerStateName } from '../container/record';
import { readTlsPair } from '../util/tls';

const CONTAINER_STATE_LABEL = {
  CONTAINER_CREATED: 'created',
  CONTAINER_RUNNING: 'running',
  CONTAINER_EXITED: 'exited',
  CONTAINER_UNKNOWN: 'unknown',
} as const satisfies Record<ContainerStateName, string>;

/** Counts of `items` by `key`, every one of `keys` present. */
function countBy<T, K extends string>(items: T[], key: (x: T) => K, keys: K[]): Record<K, number> {
  const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  for (const x of items) out[key(x)]++;
  return out;
}

export class Daemon {
  readonly logger: Logger;
  private readonly handlers: RuntimeHandlerRegistry;
  private readonly snapshotter: Snapshotter;
  private readonly images: ImageService;
  private readonly proxies: ProxyConfig;
  private readonly network: CniManager;
  private readonly sandboxes: SandboxService;
  private readonly containers: ContainerService;
  private readonly streaming: StreamingServer;
  /** Always made (the services count into it); served only with metrics.enabled. */
  private readonly metrics: Metrics;
  private readonly server: CriServer;
  private metricsServer?: http.Server;
  private admin?: AdminServer;
  /** Present when systemd started berthd as Type=notify. */
  private readonly notifier?: SystemdNotifier;
  private releases: Array<() => void> = [];
  /** systemd's D-Bus API, under runtime.cgroup_driver = "systemd". */
  private readonly systemd?: SystemdManager;
  private stopping?: Promise<void>;
  /** How far start() got: stop() undoes only that. */
  private stage: 'new' | 'locked' | 'loaded' | 'serving' = 'new';

  /** Wires every service; nothing touches the disk or the network until start(). */
  constructor(readonly config: BerthConfig) {
    const logger = (this.logger = createLogger(config.log.level, config.log.format));
    // Read (and removed from the environment) before anything is spawned.
    this.notifier = SystemdNotifier.fromEnvironment(logger);
    // Helper processes and mounts go through berth-launch, so berthd never forks itself (src/util/launch.ts).
    useLauncher(findHelper('berth-launch', 'BERTH_LAUNCH'));
    this.handlers = new RuntimeHandlerRegistry(config);
    this.snapshotter = new Snapshotter(path.join(config.root, 'snapshots'), logger);
    this.metrics = new Metrics(BERTH_VERSION, {
      eventLoopDelay: config.metrics.enabled && config.metrics.event_loop_delay,
      processMetrics: config.metrics.enabled,
    });
    const metrics = this.metrics.runtime;
    // Pod and container lifecycle events, one stream for GetContainerEvents.
    const events = new ContainerEventBus();
    // Registry proxies come from the environment, as for containerd (systemd Environment=).
    this.proxies = ProxyConfig.fromProcessEnv();
    this.images = new ImageService(config, logger, this.snapshotter, { metrics, proxies: this.proxies });
    this.network = CniManager.fromConfig(config, logger);
    // Pods and containers refer to each other: a pod's stop and removal take its
    // containers with it, and a container is created in its pod.
    const podContainers: PodContainers = {
      stopContainersOfPod: (podId) => this.containers.stopContainersOfPod(podId),
      removeContainersOfPod: (podId) => this.containers.removeContainersOfPod(podId),
    };
    this.systemd = config.runtime.cgroup_driver === 'systemd' ? new SystemdManager() : undefined;
    this.sandboxes = new SandboxService({
      config,
      systemd: this.systemd,
      logger,
      handlers: this.handlers,
      network: cniPodNetwork(this.network, metrics),
      containers: podContainers,
      events,
      metrics,
    });
    this.containers = new ContainerService({
      config,
      logger,
      handlers: this.handlers,
      images: this.images,
      snapshotter: this.snapshotter,
      pods: this.sandboxes,
      host: probeHost(),
      events,
      metrics,
    });
    this.images.setVolumeUsers((imageId) =>
      this.containers.store.list((c) => c.imageVolumeIds?.includes(imageId) ?? false).map((c) => c.id),
    );
    this.streaming = StreamingServer.fromConfig(config, containerStreamingBackends(this.containers, this.sandboxes), logger);
    metrics.bind({
      podsByState: () => countBy(this.sandboxes.list(), (p) => (this.sandboxes.criState(p) === 'SANDBOX_READY' ? 'ready' : 'notready'), ['ready', 'notready']),
      containersByState: () =>
        countBy(this.containers.list(), (c) => CONTAINER_STATE_LABEL[c.state], ['created', 'running', 'exited', 'unknown']),
      liveShims: () => this.containers.liveShims(),
      streamingSessions: () => this.streaming.sessionsByKind(),
    });
    const ctx: CriContext = {
      config,
      logger,
      version: BERTH_VERSION,
      handlers: this.handlers,
      images: this.images,
      network: this.network,
      sandboxes: this.sandboxes,
      containers: this.containers,
      streaming: this.streaming,
      metrics,
    };
    this.server = new CriServer(ctx, this.metrics);
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    // Before anything is touched: a driver that cannot work here is a reason not to start at all.
    await checkCgroupDriver(config.runtime.cgroup_driver, realDriverHost(this.systemd));
    fs.mkdirSync(config.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(config.state, { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.dirname(config.socket), { recursive: true, mode: 0o700 });
    this.releases.push(acquirePidLock(path.join(config.state, 'berthd.pid'), `state directory ${config.state}`));
    if (path.resolve(config.root) !== path.resolve(config.state)) {
      this.releases.push(acquirePidLock(path.join(config.root, 'berthd.pid'), `root directory ${config.root}`));
    }
    this.stage = 'locked';
    await clearStaleSocket(config.socket);

    await this.handlers.resetTmpDir();
    await this.handlers.probe();
    for (const h of this.handlers.list()) {
      if (!h.ok) logger.warn('runtime handler unusable', { handler: h.name, problem: h.problem });
    }
    await this.snapshotter.init();
    await this.images.init();
    // Pods first: containers are reconciled against the pods they belong to.
    await this.sandboxes.load();
    await this.containers.load();
    this.stage = 'loaded';
    await this.streaming.start();

    // The socket is created with umask 0117 so it is never, even briefly, open to others.
    const oldMask = process.umask(0o117);
    try {
      await this.server.bind(config.socket);
      this.stage = 'serving';
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(config.socket, 0o660);
    if (config.metrics.enabled) {
      const tls = readTlsPair('metrics', config.metrics.tls_cert_file, config.metrics.tls_key_file);
      this.metricsServer = await serveMetrics(this.metrics, config.metrics.address, tls);
    }
    // Operator-only endpoint (berth images import/export): root-only unix socket, never TCP.
    this.admin = await startAdminServer({ socketPath: path.join(config.state, 'admin.sock'), images: this.images, logger });
    logger.info('berthd serving', {
      version: BERTH_VERSION,
      socket: config.socket,
      metrics: config.metrics.enabled ? `${config.metrics.tls_cert_file ? 'https' : 'http'}://${config.metrics.address}/metrics` : 'off',
      ...(this.proxies.configured ? this.proxies.describe() : {}),
    });
    await this.notifier?.notify(`READY=1\nSTATUS=serving CRI on ${config.socket}\nMAINPID=${process.pid}`);
  }

  /**
   * Applies a re-read config (SIGHUP): the keys that can change in place are
   * copied into the running config, which every service shares, and pushed to
   * the services that keep their own copy; the others are only reported.
   */
  async reload(next: BerthConfig, files: string[]): Promise<{ applied: string[]; needRestart: string[] }> {
    const live = this.config;
    const changed = changedKeys(live, next);
    const applied = changed.filter(isReloadable);
    const needRestart = changed.filter((k) => !isReloadable(k));
    await this.notifier?.notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    if (applied.includes('log.level')) {
      live.log.level = next.log.level;
      this.logger.level = next.log.level;
    }
    live.image.registry_config_dir = next.image.registry_config_dir;
    live.image.credentials = next.image.credentials;
    live.image.pinned_images = [...next.image.pinned_images];
    this.images.registry.reconfigure(live.image.registry_config_dir, live.image.credentials);
    if (applied.includes('cni.conf_dir')) {
      live.cni.conf_dir = next.cni.conf_dir;
      this.network.setConfDir(next.cni.conf_dir);
    }
    // Key names only: credential values never reach the log.
    const fields = { files, applied, needRestart };
    if (needRestart.length) this.logger.warn('config reloaded; changed keys that need a restart were not applied', fields);
    else this.logger.info('config reloaded', fields);
    await this.notifier?.notify('READY=1\nSTATUS=serving (config reloaded)');
    return { applied, needRestart };
  }

  /** Drains in-flight RPCs (bounded), removes the socket and releases the locks. */
  stop(reason: string): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        const stage = this.stage;
        this.logger.info('berthd stopping', { reason, inFlight: this.server.activeCalls });
        await this.notifier?.notify(`STOPPING=1\nSTATUS=stopping (${reason})`);
        await this.admin?.close();
        if (stage === 'serving') {
          await this.server.shutdown(this.config.shutdown_timeout_seconds * 1000);
          fs.rmSync(this.config.socket, { force: true });
        }
        if (this.metricsServer) {
          this.metricsServer.closeAllConnections();
          await new Promise<void>((r) => this.metricsServer?.close(() => r()));
        }
        this.metrics.close();
        // What start() opened; another berthd may own the state when the locks were not ours.
        if (stage === 'loaded' || stage === 'serving') {
          await this.streaming.stop();
          this.containers.close();
          await this.sandboxes.close();
        }
        this.images.close();
        await this.snapshotter.close();
        for (const release of this.releases.reverse()) release();
        this.systemd?.close();
        await this.notifier?.close();
        useLauncher(undefined);
        this.logger.info('berthd stopped');
      })();
    }
    return this.stopping;
  }
}
