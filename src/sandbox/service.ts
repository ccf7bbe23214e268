// Pod sandboxes: pinned namespaces (no pause container, nothing pulled), a
// pod cgroup, /dev/shm, the pod's resolv.conf/hosts/hostname, and a durable
// record. Everything RunPodSandbox creates is undone when a later step fails,
// and a record left half-created by a killed berthd is rolled back at start.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { BerthConfig } from '../config/config';
import {
  alreadyExists,
  BerthError,
  errorMessage,
  internal,
  invalidArgument,
  notFound,
  unimplemented,
} from '../errors';
import type { PodSandboxConfig__Output } from '../gen/runtime/v1/PodSandboxConfig';
import type { PodSandboxFilter__Output } from '../gen/runtime/v1/PodSandboxFilter';
import type { PortMapping__Output } from '../gen/runtime/v1/PortMapping';
import type { DNSConfig__Output } from '../gen/runtime/v1/DNSConfig';
import type { Logger } from '../log/logger';
import type { RuntimeHandler } from '../runtime/handlers';
import { detectCgroupLayout, PodCgroup, validateCgroupPath, type CgroupLayout } from '../cgroups/cgroups';
import { isPinned, mountOf, mountsUnder, NamespacePinner, nsInode, readMountInfo, type PinResult } from './namespaces';
import { hostResolvConf, hostsFor, resolvConfFor, validateHostname, writeFileAtomic } from './pod_files';
import { sandboxNameKey, type NamespaceModeName, type SandboxRecord } from './record';
import { initialSandboxState, markNotReady, markReady } from './state';
import { SandboxStore } from './store';
import { labelsMatch } from '../store/record_store';
import { validateSysctls } from './sysctls';
import { crashPoint } from '../util/crashpoint';
import { KeyedMutex } from '../util/keyed_mutex';

/** What the CNI side needs to attach or detach a pod. */
export interface PodNetworkRequest {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** The pinned network namespace file (may be gone when tearing down after a reboot). */
  netnsPath: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  portMappings: PortMapping__Output[];
  dns: DNSConfig__Output | null;
  cgroupParent: string;
}

/** The pod network (CNI); wired in by the daemon. */
export interface PodNetwork {
  setupPodNetwork(pod: PodNetworkRequest): Promise<{ ips: string[] }>;
  /** Must be idempotent: called by every StopPodSandbox and on rollback. */
  teardownPodNetwork(pod: PodNetworkRequest): Promise<void>;
}

/** The container side: StopPodSandbox/RemovePodSandbox stop and remove the pod's containers through this. */
export interface PodContainers {
  stopContainersOfPod(podId: string): Promise<void>;
  removeContainersOfPod(podId: string): Promise<void>;
}

export interface SandboxServiceOptions {
  config: BerthConfig;
  logger: Logger;
  /** Resolves runtime_handler names (RuntimeHandlerRegistry). */
  handlers: { get(name: string): RuntimeHandler };
  network?: PodNetwork;
  containers?: PodContainers;
  pinner?: NamespacePinner;
  /** Detected from the host when absent. */
  cgroupLayout?: CgroupLayout;
  /** Parent of pod cgroups when the pod names none. */
  defaultCgroupParent?: string;
  shmSizeBytes?: number;
}

const NO_CONTAINERS: PodContainers = {
  stopContainersOfPod: async () => undefined,
  removeContainersOfPod: async () => undefined,
};

export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** Present in <state>/pods while it is a private bind mount berth made. */
const PRIVATE_MARKER = '.berth-private-mount';

// Wall-clock nanoseconds that never go backwards within the process, so pods sort by creation.
const CLOCK_BASE = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function nowNs(): string {
  return (CLOCK_BASE + process.hrtime.bigint()).toString();
}

/** Wraps a step's failure with what was being done, keeping its error kind. */
function stepError(what: string, err: unknown): BerthError {
  if (err instanceof BerthError) return new BerthError(err.kind, `${what}: ${err.message}`, { cause: err });
  return internal(`${what}: ${errorMessage(err)}`, err);
}

function modeOf(v: string | undefined, field: string, allowed: NamespaceModeName[]): NamespaceModeName {
  const mode = (v ?? 'POD') as NamespaceModeName;
  if (!allowed.includes(mode)) {
    throw invalidArgument(`namespace_options.${field} = ${mode} is not valid for a pod sandbox (use ${allowed.join(' or ')})`);
  }
  return mode;
}

export class SandboxService {
  readonly store: SandboxStore;
  network?: PodNetwork;
  containers: PodContainers;
  private readonly logger: Logger;
  private readonly handlers: SandboxServiceOptions['handlers'];
  private readonly pinner: NamespacePinner;
  private layout?: CgroupLayout;
  private readonly defaultCgroupParent: string;
  private readonly shmSizeBytes: number;
  /** Serialises run/stop/remove of the same pod. */
  private readonly locks = new KeyedMutex();
  readonly podsStateDir: string;
  readonly podsRootDir: string;
  private privateChecked = false;

  constructor(opts: SandboxServiceOptions) {
    this.logger = opts.logger.child({ component: 'sandbox' });
    this.handlers = opts.handlers;
    this.network = opts.network;
    this.containers = opts.containers ?? NO_CONTAINERS;
    this.pinner = opts.pinner ?? new NamespacePinner();
    this.layout = opts.cgroupLayout;
    this.defaultCgroupParent = opts.defaultCgroupParent ?? '/berth';
    this.shmSizeBytes = opts.shmSizeBytes ?? DEFAULT_SHM_SIZE;
    this.podsStateDir = path.join(opts.config.state, 'pods');
    this.podsRootDir = path.join(opts.config.root, 'pods');
    this.store = new SandboxStore(this.podsRootDir, this.logger);
  }

  private cgroupLayout(): CgroupLayout {
    this.layout ??= detectCgroupLayout();
    return this.layout;
  }

  // ---- start-up ----------------------------------------------------------

  /**
   * Loads the records and reconciles them with the machine: half-created pods
   * are rolled back; ready pods whose namespaces are gone (reboot, or their
   * berth-pause died) become NOTREADY; directories with no record are removed.
   */
  async load(): Promise<void> {
    fs.mkdirSync(this.podsStateDir, { recursive: true, mode: 0o700 });
    const records = this.store.load();
    for (const rec of records) {
      if (rec.state === 'creating') {
        this.logger.warn('rolling back a pod sandbox left half-created', { id: rec.id, name: rec.metadata.name });
        try {
          await this.undoAll(rec);
          await this.store.delete(rec.id);
        } catch (err) {
          // The record stays ('creating', hidden) for the next start to retry. Its
          // name is not reserved: RunPodSandbox never returned this id, so the
          // kubelet retries with the same name and attempt and must not be refused.
          this.logger.error('rollback of a half-created pod sandbox failed', { id: rec.id, error: errorMessage(err) });
        }
        continue;
      }
      if (rec.state === 'ready' && !this.namespacesIntact(rec)) {
        this.logger.warn('pod sandbox namespaces are gone; marking it NOTREADY', { id: rec.id, name: rec.metadata.name });
        try {
          await this.killPause(rec);
          await this.pinner.unpin(path.join(rec.stateDir, 'ns'), rec.shmPath);
        } catch (err) {
          this.logger.warn('cleaning up a broken pod sandbox failed', { id: rec.id, error: errorMessage(err) });
        }
        await this.store.update(rec.id, markNotReady);
      }
    }
    await this.removeOrphanDirs();
  }

  private namespacesIntact(rec: SandboxRecord): boolean {
    const table = readMountInfo();
    for (const p of Object.values(rec.nsPaths)) if (p && !isPinned(p, table)) return false;
    if (rec.pausePid !== undefined && !this.pauseAlive(rec)) return false;
    return true;
  }

  private async removeOrphanDirs(): Promise<void> {
    for (const base of [this.podsStateDir, this.podsRootDir]) {
      for (const name of fs.readdirSync(base)) {
        if (!/^[0-9a-f]{64}$/.test(name) || this.store.get(name)) continue;
        const dir = path.join(base, name);
        try {
          if (base === this.podsStateDir) await this.pinner.unpin(path.join(dir, 'ns'), path.join(dir, 'shm'));
          this.removeDir(dir);
          this.logger.info('removed the leftovers of a pod sandbox with no record', { dir });
        } catch (err) {
          this.logger.warn('cannot remove pod sandbox leftovers', { dir, error: errorMessage(err) });
        }
      }
    }
  }

  /**
   * Undoes the private bind mount of <state>/pods (see ensurePrivatePropagation)
   * when no pod has mounts below it any more; called on daemon shutdown. Pods
   * are never touched.
   */
  async close(): Promise<void> {
    const marker = path.join(this.podsStateDir, PRIVATE_MARKER);
    if (!fs.existsSync(marker)) return;
    const root = path.resolve(this.podsStateDir);
    const table = readMountInfo();
    if (!table.some((m) => m.mountpoint === root)) return;
    if (table.some((m) => m.mountpoint.startsWith(root + '/'))) return;
    fs.rmSync(marker, { force: true });
    this.privateChecked = false;
    await new Promise<void>((resolve) =>
      execFile('umount', [root], (err) => {
        if (err) this.logger.warn('cannot unmount the pods directory', { dir: root, error: errorMessage(err) });
        resolve();
      }),
    );
  }

  /**
   * When <state>/pods sits on a shared mount (systemd hosts), the nsfs binds
   * below would be copied into peer mount namespaces and keep the pod
   * namespaces alive there; berth then makes <state>/pods a private bind
   * mount of itself, once, and leaves a marker so close() can undo it.
   */
  private async ensurePrivatePropagation(): Promise<void> {
    if (this.privateChecked) return;
    const m = mountOf(this.podsStateDir);
    if (m && m.optional.some((o) => o.startsWith('shared:'))) {
      await this.pinner.makePrivate(this.podsStateDir);
      fs.writeFileSync(path.join(this.podsStateDir, PRIVATE_MARKER), '');
    }
    this.privateChecked = true;
  }

  // ---- lookups -----------------------------------------------------------

  /** The record for an exact id or a unique id prefix; undefined when none. Ambiguous prefixes are an error. */
  find(idOrPrefix: string): SandboxRecord | undefined {
    return this.store.find(idOrPrefix);
  }

  /** The record, or NOT_FOUND. */
  get(idOrPrefix: string): SandboxRecord {
    const rec = this.find(idOrPrefix);
    if (!rec) throw notFound(`pod sandbox "${idOrPrefix}" not found`);
    return rec;
  }

  /**
   * Pods as ListPodSandbox shows them. Pods still being created are left out
   * (the kubelet must not act on a sandbox before RunPodSandbox returned it).
   */
  list(filter?: PodSandboxFilter__Output | null): SandboxRecord[] {
    return this.store.list(
      (r) =>
        r.state !== 'creating' &&
        (!filter?.id || r.id.startsWith(filter.id)) &&
        (!filter?.state || this.criState(r) === filter.state.state) &&
        labelsMatch(r.config.labels, filter?.labelSelector),
    );
  }

  /**
   * The CRI state: READY only for a fully created pod whose berth-pause (when
   * it has one) still runs; without it the pod PID namespace is dead and the
   * kubelet must recreate the sandbox.
   */
  criState(rec: SandboxRecord): 'SANDBOX_READY' | 'SANDBOX_NOTREADY' {
    if (rec.state !== 'ready') return 'SANDBOX_NOTREADY';
    if (rec.pausePid !== undefined && !this.pauseAlive(rec)) return 'SANDBOX_NOTREADY';
    return 'SANDBOX_READY';
  }

  // ---- RunPodSandbox -----------------------------------------------------

  async run(config: PodSandboxConfig__Output | null, runtimeHandlerName: string): Promise<string> {
    if (!config) throw invalidArgument('RunPodSandbox: config is required');
    const md = config.metadata;
    if (!md || !md.name || !md.namespace || !md.uid) {
      throw invalidArgument('RunPodSandbox: metadata.name, metadata.namespace and metadata.uid are required');
    }
    const handler = this.handlers.get(runtimeHandlerName);
    const linux = config.linux;
    const nsOpts = linux?.securityContext?.namespaceOptions;
    const modes = {
      network: modeOf(nsOpts?.network, 'network', ['POD', 'NODE']),
      pid: modeOf(nsOpts?.pid, 'pid', ['POD', 'CONTAINER', 'NODE']),
      ipc: modeOf(nsOpts?.ipc, 'ipc', ['POD', 'NODE']),
    };
    if (nsOpts?.usernsOptions && nsOpts.usernsOptions.mode === 'POD') {
      throw unimplemented('user namespaces for pods (namespace_options.userns_options.mode = POD) are not supported');
    }
    const podNet = modes.network === 'POD';
    const podIpc = modes.ipc === 'POD';
    const sysctls = linux?.sysctls ?? {};
    validateSysctls(sysctls, podNet, podIpc);
    const hostname = podNet ? config.hostname : os.hostname();
    if (hostname) validateHostname(hostname);
    const cgroupPath = validateCgroupPath(linux?.cgroupParent || `${this.defaultCgroupParent}/pod${md.uid}`);
    const resolvConf = resolvConfFor(config.dnsConfig);
    if (config.logDirectory && !path.isAbsolute(config.logDirectory)) {
      throw invalidArgument(`log_directory "${config.logDirectory}" must be an absolute path`);
    }

    const metadata = { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt };
    const key = sandboxNameKey(metadata);
    const id = randomBytes(32).toString('hex');
    const existing = this.store.reserveName(key, id);
    if (existing) {
      throw alreadyExists(
        `pod sandbox name "${key}" is already reserved by pod ${existing}; stop and remove it first, or use another attempt number`,
      );
    }
    const stateDir = path.join(this.podsStateDir, id);
    const filesDir = path.join(this.podsRootDir, id);
    const rec: SandboxRecord = {
      id,
      metadata,
      state: initialSandboxState(),
      createdAt: nowNs(),
      runtimeHandler: handler.name,
      config,
      namespaceModes: modes,
      nsPaths: {},
      stateDir,
      filesDir,
      shmPath: podIpc ? path.join(stateDir, 'shm') : undefined,
      hostnameFile: path.join(filesDir, 'hostname'),
      hostsFile: path.join(filesDir, 'hosts'),
      resolvConfFile: path.join(filesDir, 'resolv.conf'),
      hostname: hostname || os.hostname(),
      cgroup: { path: cgroupPath, createdByBerth: false },
      network: { ip: '', additionalIps: [] },
      networkAttached: false,
    };
    return this.locks.run(id, async () => {
      let step = 'write the sandbox record';
      let pinned: PinResult = { nsPaths: {} };
      let network = rec.network;
      const cgroup = new PodCgroup(this.cgroupLayout(), cgroupPath);
      // Decided up front and saved with the 'creating' record (one fsync'd
      // write instead of one per step), so a rollback after a crash knows what to undo.
      rec.cgroup.createdByBerth =
        !cgroup.exists() ||
        this.store.list().some((o) => o.id !== id && o.cgroup.path === cgroupPath && o.cgroup.createdByBerth);
      rec.networkAttached = podNet && this.network !== undefined;
      try {
        await this.store.create(rec);
        crashPoint('pod-run:after-record');
        step = 'create the pod directories';
        fs.mkdirSync(path.join(stateDir, 'ns'), { recursive: true, mode: 0o700 });
        if (rec.shmPath) fs.mkdirSync(rec.shmPath, { mode: 0o755 });
        fs.mkdirSync(filesDir, { recursive: true, mode: 0o755 });

        step = `create the pod cgroup ${cgroupPath}`;
        cgroup.create();
        crashPoint('pod-run:after-cgroup');

        step = 'pin the pod namespaces';
        await this.ensurePrivatePropagation();
        pinned = await this.pinner.pin({
          nsDir: path.join(stateDir, 'ns'),
          net: podNet,
          ipc: podIpc,
          uts: podNet,
          pid: modes.pid === 'POD',
          hostname: podNet && hostname ? hostname : undefined,
          sysctls,
          cgroupProcs: cgroup.procsFiles(),
          shm: rec.shmPath ? { path: rec.shmPath, sizeBytes: this.shmSizeBytes } : undefined,
        });
        crashPoint('pod-run:after-pin');

        step = 'write the pod files';
        writeFileAtomic(rec.hostnameFile, rec.hostname + '\n');
        writeFileAtomic(rec.resolvConfFile, resolvConf ?? hostResolvConf());
        writeFileAtomic(rec.hostsFile, hostsFor(rec.hostname, []));
        if (config.logDirectory) {
          step = `create the log directory ${config.logDirectory}`;
          fs.mkdirSync(config.logDirectory, { recursive: true, mode: 0o755 });
        }

        if (rec.networkAttached && this.network) {
          step = 'set up the pod network';
          const { ips } = await this.network.setupPodNetwork(this.networkRequest(rec, pinned.nsPaths));
          network = { ip: ips[0] ?? '', additionalIps: ips.slice(1) };
          writeFileAtomic(rec.hostsFile, hostsFor(rec.hostname, ips.slice(0, 1)));
          crashPoint('pod-run:after-network');
        }
        step = 'write the sandbox record';
        // The results of the steps go into the record with the state change: one write.
        await this.store.update(id, (r) => {
          r.nsPaths = pinned.nsPaths;
          r.pausePid = pinned.pausePid;
          r.network = network;
          markReady(r);
        });
        this.logger.info('pod sandbox ready', { id, name: key, handler: handler.name, ip: rec.network.ip });
        return id;
      } catch (err) {
        const failure = stepError(`RunPodSandbox ${key}: cannot ${step}`, err);
        this.logger.warn('pod sandbox creation failed; rolling back', { id, name: key, error: failure.message });
        try {
          await this.undoAll(rec);
          await this.store.delete(id);
        } catch (undoErr) {
          // The record stays ('creating', hidden from List) so the next start retries the rollback.
          this.logger.error('rollback of a failed pod sandbox incomplete', { id, error: errorMessage(undoErr) });
        } finally {
          // The kubelet retries with the same name: it must not meet a pod it never saw.
          this.store.releaseName(key, id);
        }
        throw failure;
      }
    });
  }

  private networkRequest(rec: SandboxRecord, nsPaths = rec.nsPaths): PodNetworkRequest {
    return {
      id: rec.id,
      name: rec.metadata.name,
      namespace: rec.metadata.namespace,
      uid: rec.metadata.uid,
      netnsPath: nsPaths.net ?? path.join(rec.stateDir, 'ns', 'net'),
      labels: rec.config.labels,
      annotations: rec.config.annotations,
      portMappings: rec.config.portMappings,
      dns: rec.config.dnsConfig,
      cgroupParent: rec.cgroup.path,
    };
  }

  // ---- teardown ----------------------------------------------------------

  /**
   * The PID of berth-pause: from the record, or from the pid file berth-pinns
   * leaves next to the namespaces (a berthd killed mid-RunPodSandbox never saw it).
   */
  private pausePidOf(rec: SandboxRecord): number | undefined {
    if (rec.pausePid !== undefined) return rec.pausePid;
    try {
      const n = Number(fs.readFileSync(path.join(rec.stateDir, 'ns', 'pause.pid'), 'utf8').trim());
      return Number.isInteger(n) && n > 1 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  private pauseAlive(rec: SandboxRecord, pid = this.pausePidOf(rec)): boolean {
    if (pid === undefined) return false;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return false;
    }
    if (/^\d+ \(.*\) Z/.test(stat)) return false;
    // A reused PID is not our pause: it must be in the pinned PID namespace, or at least be named berth-pause.
    const want = nsInode(rec.nsPaths.pid ?? path.join(rec.stateDir, 'ns', 'pid'));
    if (want !== undefined && isPinned(rec.nsPaths.pid ?? path.join(rec.stateDir, 'ns', 'pid'))) {
      return nsInode(`/proc/${pid}/ns/pid`) === want;
    }
    return stat.includes('(berth-pause)');
  }

  /** Kills berth-pause (and with it every process left in the pod PID namespace). */
  private async killPause(rec: SandboxRecord): Promise<void> {
    const pid = this.pausePidOf(rec);
    if (pid === undefined || !this.pauseAlive(rec, pid)) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    const deadline = Date.now() + 5000;
    while (this.pauseAlive(rec, pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Stop-time teardown: network, pause, namespaces, shm. Every step tolerates already-done. */
  private async stopResources(rec: SandboxRecord): Promise<void> {
    if (rec.networkAttached && this.network) {
      try {
        await this.network.teardownPodNetwork(this.networkRequest(rec));
      } catch (err) {
        throw stepError(`cannot tear down the network of pod ${rec.id}`, err);
      }
      if (this.store.get(rec.id)) await this.store.update(rec.id, (r) => void (r.networkAttached = false));
    }
    await this.killPause(rec);
    try {
      await this.pinner.unpin(path.join(rec.stateDir, 'ns'), rec.shmPath);
    } catch (err) {
      throw stepError(`cannot unpin the namespaces of pod ${rec.id}`, err);
    }
  }

  /** Remove-time cleanup: cgroup (when berth made it and no other pod uses it), directories. */
  private async removeResources(rec: SandboxRecord): Promise<void> {
    const shared = this.store.list().some((o) => o.id !== rec.id && o.cgroup.path === rec.cgroup.path);
    if (rec.cgroup.createdByBerth && !shared) {
      await new PodCgroup(this.cgroupLayout(), rec.cgroup.path).remove();
    }
    this.removeDir(rec.stateDir);
    this.removeDir(rec.filesDir);
  }

  private async undoAll(rec: SandboxRecord): Promise<void> {
    await this.stopResources(rec);
    await this.removeResources(rec);
  }

  /** rm -r that refuses to descend into anything still mounted. */
  private removeDir(dir: string): void {
    const mounted = mountsUnder(dir);
    if (mounted.length > 0) {
      throw internal(`cannot remove ${dir}: still mounted: ${mounted.map((m) => m.mountpoint).join(', ')}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // ---- StopPodSandbox / RemovePodSandbox -----------------------------------

  /** Stops the pod's containers, detaches its network and drops its namespaces. Missing pod: nothing to do. */
  async stop(idOrPrefix: string): Promise<void> {
    if (!idOrPrefix) throw invalidArgument('StopPodSandbox: pod_sandbox_id is required');
    const found = this.find(idOrPrefix);
    if (!found) return;
    await this.locks.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (!rec) return;
      await this.stopLocked(rec);
    });
  }

  private async stopLocked(rec: SandboxRecord): Promise<void> {
    try {
      await this.containers.stopContainersOfPod(rec.id);
    } catch (err) {
      throw stepError(`StopPodSandbox ${rec.id}: cannot stop its containers`, err);
    }
    crashPoint('pod-stop:after-containers-stopped');
    await this.stopResources(rec);
    crashPoint('pod-stop:after-resources');
    // A record left 'creating' by a failed rollback is torn down but keeps its state.
    if (rec.state === 'ready') {
      await this.store.update(rec.id, markNotReady);
      this.logger.info('pod sandbox stopped', { id: rec.id, name: sandboxNameKey(rec.metadata) });
    }
  }

  /** Stops (if needed) and deletes the pod and its containers. Missing pod: nothing to do. */
  async remove(idOrPrefix: string): Promise<void> {
    if (!idOrPrefix) throw invalidArgument('RemovePodSandbox: pod_sandbox_id is required');
    const found = this.find(idOrPrefix);
    if (!found) return;
    await this.locks.run(found.id, async () => {
      const rec = this.store.get(found.id);
      if (!rec) return;
      // Like containerd: removing a running pod stops it first.
      if (rec.state === 'ready') await this.stopLocked(rec);
      else await this.stopResources(rec);
      try {
        await this.containers.removeContainersOfPod(rec.id);
      } catch (err) {
        throw stepError(`RemovePodSandbox ${rec.id}: cannot remove its containers`, err);
      }
      crashPoint('pod-remove:after-containers-removed');
      await this.removeResources(rec);
      crashPoint('pod-remove:after-resources');
      await this.store.delete(rec.id);
      this.logger.info('pod sandbox removed', { id: rec.id, name: sandboxNameKey(rec.metadata) });
    });
  }

  /** Live CPU/memory figures of the pod cgroup. */
  cgroupStats(id: string): ReturnType<PodCgroup['stats']> {
    const rec = this.get(id);
    return new PodCgroup(this.cgroupLayout(), rec.cgroup.path).stats();
  }
}
