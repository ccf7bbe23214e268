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
import { RuntimeHandlerRegistry } from '../runtime/handlers';
import { BERTH_VERSION } from '../version';
import { acquirePidLock, clearStaleSocket } from './lock';
import type { CriContext } from '../cri/context';
import { probeHost } from '../runtime/spec/host_info';
import { Snapshotter } from '../snapshotter/snapshotter';
import { ImageService } from '../image/service';
import { CniManager } from '../network/cni';
import { SandboxService } from '../sandbox/service';
import type { PodContainers } from '../sandbox/teardown';
import { cniPodNetwork } from '../sandbox/cni_adapter';
import { ContainerService } from '../container/service';
import { containerStreamingBackends } from '../container/streaming_backends';
import { StreamingServer } from '../streaming/server';
import { startAdminServer, type AdminServer } from '../admin/server';

export class Daemon {
  readonly logger: Logger;
  private readonly handlers: RuntimeHandlerRegistry;
  private readonly snapshotter: Snapshotter;
  private readonly images: ImageService;
  private readonly network: CniManager;
  private readonly sandboxes: SandboxService;
  private readonly containers: ContainerService;
  private readonly streaming: StreamingServer;
  private readonly metrics?: Metrics;
  private readonly server: CriServer;
  private metricsServer?: http.Server;
  private admin?: AdminServer;
  private releases: Array<() => void> = [];
  private stopping?: Promise<void>;
  /** How far start() got: stop() undoes only that. */
  private stage: 'new' | 'locked' | 'loaded' | 'serving' = 'new';

  /** Wires every service; nothing touches the disk or the network until start(). */
  constructor(readonly config: BerthConfig) {
    const logger = (this.logger = createLogger(config.log.level, config.log.format));
    this.handlers = new RuntimeHandlerRegistry(config);
    this.snapshotter = new Snapshotter(path.join(config.root, 'snapshots'), logger);
    this.images = new ImageService(config, logger, this.snapshotter);
    this.network = CniManager.fromConfig(config, logger);
    // Pods and containers refer to each other: a pod's stop and removal take its
    // containers with it, and a container is created in its pod.
    const podContainers: PodContainers = {
      stopContainersOfPod: (podId) => this.containers.stopContainersOfPod(podId),
      removeContainersOfPod: (podId) => this.containers.removeContainersOfPod(podId),
    };
    this.sandboxes = new SandboxService({
      config,
      logger,
      handlers: this.handlers,
      network: cniPodNetwork(this.network),
      containers: podContainers,
    });
    this.containers = new ContainerService({
      config,
      logger,
      handlers: this.handlers,
      images: this.images,
      snapshotter: this.snapshotter,
      pods: this.sandboxes,
      host: probeHost(),
    });
    this.images.setVolumeUsers((imageId) =>
      this.containers.store.list((c) => c.imageVolumeIds?.includes(imageId) ?? false).map((c) => c.id),
    );
    this.streaming = StreamingServer.fromConfig(config, containerStreamingBackends(this.containers, this.sandboxes), logger);
    this.metrics = config.metrics.enabled ? new Metrics(BERTH_VERSION) : undefined;
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
    };
    this.server = new CriServer(ctx, this.metrics);
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    fs.mkdirSync(config.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(config.state, { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.dirname(config.socket), { recursive: true, mode: 0o700 });
    this.releases.push(acquirePidLock(path.join(config.state, 'berthd.pid'), `state directory ${config.state}`));
    if (path.resolve(config.root) !== path.resolve(config.state)) {
      this.releases.push(acquirePidLock(path.join(config.root, 'berthd.pid'), `root directory ${config.root}`));
    }
    this.stage = 'locked';
    await clearStaleSocket(config.socket);

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
    if (this.metrics) this.metricsServer = await serveMetrics(this.metrics, config.metrics.address);
    // Operator-only endpoint (berth images import/export): root-only unix socket, never TCP.
    this.admin = await startAdminServer({ socketPath: path.join(config.state, 'admin.sock'), images: this.images, logger });
    logger.info('berthd serving', {
      version: BERTH_VERSION,
      socket: config.socket,
      metrics: config.metrics.enabled ? config.metrics.address : 'off',
    });
  }

  /** Drains in-flight RPCs (bounded), removes the socket and releases the locks. */
  stop(reason: string): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        const stage = this.stage;
        this.logger.info('berthd stopping', { reason, inFlight: this.server.activeCalls });
        await this.admin?.close();
        if (stage === 'serving') {
          await this.server.shutdown(this.config.shutdown_timeout_seconds * 1000);
          fs.rmSync(this.config.socket, { force: true });
        }
        if (this.metricsServer) {
          this.metricsServer.closeAllConnections();
          await new Promise<void>((r) => this.metricsServer?.close(() => r()));
        }
        // What start() opened; another berthd may own the state when the locks were not ours.
        if (stage === 'loaded' || stage === 'serving') {
          await this.streaming.stop();
          this.containers.close();
          await this.sandboxes.close();
        }
        this.images.close();
        for (const release of this.releases.reverse()) release();
        this.logger.info('berthd stopped');
      })();
    }
    return this.stopping;
  }
}
