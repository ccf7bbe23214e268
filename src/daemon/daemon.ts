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
import { cniPodNetwork } from '../sandbox/cni_adapter';
import { ContainerService } from '../container/service';
import { containerStreamingBackends } from '../container/streaming_backends';
import { StreamingServer } from '../streaming/server';
import { startAdminServer, type AdminServer } from '../admin/server';

export class Daemon {
  readonly logger: Logger;
  private server?: CriServer;
  private metricsServer?: http.Server;
  private metrics?: Metrics;
  private releases: Array<() => void> = [];
  private stopping?: Promise<void>;
  private images?: ImageService;
  private sandboxes?: SandboxService;
  private containers?: ContainerService;
  private streaming?: StreamingServer;
  private admin?: AdminServer;
  private socketBound = false;

  constructor(readonly config: BerthConfig) {
    this.logger = createLogger(config.log.level, config.log.format);
  }

  async start(): Promise<void> {
    const { config } = this;
    fs.mkdirSync(config.root, { recursive: true, mode: 0o700 });
    fs.mkdirSync(config.state, { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.dirname(config.socket), { recursive: true, mode: 0o700 });
    this.releases.push(acquirePidLock(path.join(config.state, 'berthd.pid'), `state directory ${config.state}`));
    if (path.resolve(config.root) !== path.resolve(config.state)) {
      this.releases.push(acquirePidLock(path.join(config.root, 'berthd.pid'), `root directory ${config.root}`));
    }
    await clearStaleSocket(config.socket);

    const handlers = new RuntimeHandlerRegistry(config);
    await handlers.probe();
    for (const h of handlers.list()) {
      if (!h.ok) this.logger.warn('runtime handler unusable', { handler: h.name, problem: h.problem });
    }
    const host = await probeHost();
    const snapshotter = new Snapshotter(path.join(config.root, 'snapshots'), this.logger);
    await snapshotter.init();
    this.images = await ImageService.open(config, this.logger, snapshotter);
    const network = CniManager.fromConfig(config, this.logger);
    this.sandboxes = new SandboxService({ config, logger: this.logger, handlers, network: cniPodNetwork(network) });
    this.containers = new ContainerService({
      config,
      logger: this.logger,
      handlers,
      images: this.images,
      snapshotter,
      pods: this.sandboxes,
      host,
    });
    this.sandboxes.containers = this.containers;
    // Pods first: containers are reconciled against the pods they belong to.
    await this.sandboxes.load();
    await this.containers.load();

    this.streaming = StreamingServer.fromConfig(config, containerStreamingBackends(this.containers, this.sandboxes), this.logger);
    await this.streaming.start();

    const ctx: CriContext = {
      config,
      logger: this.logger,
      version: BERTH_VERSION,
      handlers,
      images: this.images,
      network,
      sandboxes: this.sandboxes,
      containers: this.containers,
      streaming: this.streaming,
    };

    const metrics = config.metrics.enabled ? new Metrics(BERTH_VERSION, { eventLoopDelay: config.metrics.event_loop_delay }) : undefined;
    this.metrics = metrics;
    this.server = new CriServer(ctx, metrics);
    // The socket is created with umask 0117 so it is never, even briefly, open to others.
    const oldMask = process.umask(0o117);
    try {
      await this.server.bind(config.socket);
      this.socketBound = true;
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(config.socket, 0o660);
    if (metrics) this.metricsServer = await serveMetrics(metrics, config.metrics.address);
    // Operator-only endpoint (berth images import/export): root-only unix socket, never TCP.
    this.admin = await startAdminServer({ socketPath: path.join(config.state, 'admin.sock'), images: this.images, logger: this.logger });
    this.logger.info('berthd serving', {
      version: BERTH_VERSION,
      socket: config.socket,
      metrics: config.metrics.enabled ? config.metrics.address : 'off',
    });
  }

  /** Drains in-flight RPCs (bounded), removes the socket and releases the locks. */
  stop(reason: string): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        this.logger.info('berthd stopping', { reason, inFlight: this.server?.activeCalls ?? 0 });
        await this.admin?.close();
        if (this.server) await this.server.shutdown(this.config.shutdown_timeout_seconds * 1000);
        if (this.metricsServer) {
          this.metricsServer.closeAllConnections();
          await new Promise<void>((r) => this.metricsServer?.close(() => r()));
        }
        this.metrics?.close();
        if (this.socketBound) fs.rmSync(this.config.socket, { force: true });
        await this.streaming?.stop();
        this.containers?.close();
        await this.sandboxes?.close();
        this.images?.close();
        for (const release of this.releases.reverse()) release();
        this.logger.info('berthd stopped');
      })();
    }
    return this.stopping;
  }
}
