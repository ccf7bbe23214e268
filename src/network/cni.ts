// Pod networking through CNI plugins (spec 1.0.0 semantics, 0.3.x/0.4.0
// configs accepted): ADD each plugin of the network's list in order on pod
// start, DEL in reverse on stop, CHECK on request. The config and result of
// every attachment are cached durably so DEL works after config changes,
// daemon restarts and a vanished network namespace.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BerthConfig } from '../config/config';
import { BerthError, errorMessage, failedPrecondition, invalidArgument, notFound, wrapError } from '../errors';
import type { DNSConfig__Output } from '../gen/runtime/v1/DNSConfig';
import type { PortMapping__Output } from '../gen/runtime/v1/PortMapping';
import { silentLogger, type Logger } from '../log/logger';
import { KeyedMutex } from '../util/keyed_mutex';
import { AttachmentCache, type AttachmentRecord, type CapabilityArgs } from './cni_cache';
import { NetworkConfigLoader, type NetworkConfigList, type PluginConf } from './cni_config';
import { findPlugin, invokePlugin, type CniCommand } from './cni_exec';
import { parseCidr, parseResult, podIps, type CniInterface, type CniResult } from './cni_result';
import { hasMasqPlugin, removeMasqRules } from './ipmasq_cleanup';

export type { CniResult, CniInterface, CniIpConfig } from './cni_result';

/** What setup needs to know about a pod. */
export interface PodNetworkSpec {
  /** The sandbox id; CNI_CONTAINERID. */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** Path of the pod's network namespace (a bind-mounted nsfs file such as /run/netns/NAME, or /proc/PID/ns/net). */
  netnsPath: string;
  portMappings?: readonly PortMapping__Output[];
  /** Traffic shaping in bits per second (from the kubernetes.io/ingress-bandwidth annotations). */
  bandwidth?: { ingressRate?: number; egressRate?: number };
  dns?: DNSConfig__Output | null;
  /** The namespace's loopback is up already (berth-pinns brings it up): no loopback plugin run. */
  loopbackUp?: boolean;
}

/** What teardown and check need: the pod's identity and, when it still exists, its netns. */
export interface PodNetworkRef {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  /** Omit or leave empty when unknown; the path recorded at setup is used then. */
  netnsPath?: string;
}

export interface PodIp {
  ip: string;
  prefixLength: number;
  gateway?: string;
  version: 4 | 6;
}

export interface PodNetworkResult {
  network: string;
  interfaces: CniInterface[];
  /** The pod's addresses, primary first (as the plugins ordered them). */
  ips: PodIp[];
  result: CniResult;
}

export interface NetworkStatus {
  ready: boolean;
  message: string;
}

export interface CniManagerOptions {
  binDirs: readonly string[];
  confDir: string;
  /** Where attachment records live; must survive daemon restarts (and ideally reboots, for IPAM leases). */
  cacheDir: string;
  logger?: Logger;
  /** Upper bound for one plugin run. */
  pluginTimeoutMs?: number;
}

const IF_NAME = 'eth0';
const NSFS_MAGIC = 0x6e736673;
// No "-": the id ends the record file name "<network>-<podId>".
const POD_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.]*$/;
// The bandwidth plugin wants a burst with every rate; like containerd, berth means "no burst limit".
const UNLIMITED_BURST = 2147483647;

const atLeast040 = (v: string): boolean => v === '0.4.0' || v === '1.0.0';

/** Whether the path is a usable network namespace handle (a pinned nsfs file or a /proc ns link). */
export function isNetnsUsable(netnsPath: string): boolean {
  if (!netnsPath) return false;
  try {
    if (fs.statfsSync(netnsPath).type === NSFS_MAGIC) return true;
    // /proc/PID/ns/net is a magic link; if it still resolves the process (and namespace) exists.
    return netnsPath.startsWith('/proc/') && fs.existsSync(netnsPath);
  } catch {
    return false;
  }
}

function cniArgValue(field: string, v: string): string {
  if (/[;=]/.test(v)) throw invalidArgument(`pod ${field} "${v}" must not contain ";" or "="`);
  return v;
}

export class CniManager {
  private loader: NetworkConfigLoader;
  private readonly cache: AttachmentCache;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private ipRanges: Array<Array<{ subnet: string }>> = [];
  /** Operations on one pod run one after another; different pods proceed in parallel. */
  private readonly podLocks = new KeyedMutex();

  constructor(readonly options: CniManagerOptions) {
    this.loader = new NetworkConfigLoader(options.confDir);
    this.cache = new AttachmentCache(options.cacheDir);
    this.logger = (options.logger ?? silentLogger()).child({ component: 'cni' });
    this.timeoutMs = options.pluginTimeoutMs ?? 120_000;
  }

  /** The manager for berthd's configuration; records live under <root>/cni/results. */
  static fromConfig(config: BerthConfig, logger?: Logger): CniManager {
    return new CniManager({
      binDirs: config.cni.bin_dirs,
      confDir: config.cni.conf_dir,
      cacheDir: path.join(config.root, 'cni', 'results'),
      logger,
    });
  }

  /** SIGHUP: look for the pod network in another directory from now on (pods already attached keep their cached results). */
  setConfDir(dir: string): void {
    this.options.confDir = dir;
    this.loader = new NetworkConfigLoader(dir);
  }

  /** NetworkReady: a valid config exists and every plugin it names (plus loopback) is installed. */
  status(): NetworkStatus {
    const lookup = this.loader.lookup();
    if (lookup.state !== 'ok') return { ready: false, message: lookup.message };
    const { list, file } = lookup.config;
    const missing = [...new Set([...list.plugins.map((p) => p.type), 'loopback'])].filter(
      (t) => !findPlugin(this.options.binDirs, t),
    );
    if (missing.length > 0) {
      return {
        ready: false,
        message:
          `CNI plugin(s) ${missing.join(', ')} of network "${list.name}" (${file}) ` +
          `not found in ${this.options.binDirs.join(':')}`,
      };
    }
    return { ready: true, message: `network "${list.name}" (cniVersion ${list.cniVersion}) from ${file}` };
  }

  /** For verbose Status: which config is in use. */
  info(): Record<string, unknown> {
    const lookup = this.loader.lookup();
    return {
      confDir: this.options.confDir,
      binDirs: this.options.binDirs,
      config: lookup.state === 'none' ? null : lookup.state === 'ok' ? lookup.config.file : lookup.file,
      network: lookup.state === 'ok' ? lookup.config.list.name : null,
      problem: lookup.state === 'ok' ? null : lookup.message,
      podCidr: this.podCidr(),
    };
  }

  /**
   * UpdateRuntimeConfig: the node's pod CIDR(s), comma-separated for dual
   * stack; "" clears. Given to plugins declaring the ipRanges capability.
   */
  setPodCidr(cidr: string): void {
    const parts = cidr
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const p of parts) {
      try {
        if (!p.includes('/')) throw new Error(`"${p}" has no prefix length`);
        parseCidr(p);
      } catch (err) {
        throw invalidArgument(`pod CIDR: ${errorMessage(err)}`);
      }
    }
    this.ipRanges = parts.map((subnet) => [{ subnet }]);
    this.logger.info('pod CIDR set', { podCidr: parts.join(',') });
  }

  podCidr(): string {
    return this.ipRanges.map((r) => r[0]?.subnet ?? '').join(',');
  }

  /**
   * Attaches the pod to the network (and brings its loopback up). On failure
   * nothing stays attached. What needs no netns (the config, the release of a
   * leftover attachment, the attachment record) is done first; the plugins run
   * once `netnsPinned` resolves (when it rejects, with that failure and
   * nothing attached). `timed` wraps the rest, and any failure before it: the
   * ADD as the metrics count it.
   */
  async setup(
    pod: PodNetworkSpec,
    netnsPinned: Promise<void> = Promise.resolve(),
    timed: <T>(add: () => Promise<T>) => Promise<T> = (add) => add(),
  ): Promise<PodNetworkResult> {
    this.checkPodId(pod.id);
    if (!path.isAbsolute(pod.netnsPath)) throw invalidArgument(`network namespace "${pod.netnsPath}" of pod ${pod.id} is not an absolute path`);
    const cniArgs = this.cniArgs(pod);
    const capabilityArgs = this.capabilityArgs(pod);
    return this.podLocks.run(pod.id, async () => {
      let record: AttachmentRecord;
      try {
        record = await this.prepareAttachment(pod, cniArgs, capabilityArgs);
      } catch (err) {
        return timed(() => Promise.reject(err));
      }
      try {
        await netnsPinned;
      } catch (err) {
        // No plugin ran: the record alone goes.
        await this.cache.remove(record.network, record.podId);
        throw err;
      }
      return timed(() => this.addAll(pod, record));
    });
  }

  /** The config, a leftover attachment of the same sandbox released, and the record written before any ADD. */
  private async prepareAttachment(pod: PodNetworkSpec, cniArgs: string, capabilityArgs: CapabilityArgs): Promise<AttachmentRecord> {
    const lookup = this.loader.lookup();
    if (lookup.state !== 'ok') throw failedPrecondition(`pod network is not ready: ${lookup.message}`);
    const { list } = lookup.config;

    // A leftover attachment of the same sandbox (a retried setup) is released first so nothing is held twice.
    await this.teardownLocked({ ...pod });

    const record: AttachmentRecord = {
      kind: 'berthCniAttachmentV1',
      network: list.name,
      podId: pod.id,
      podName: pod.name,
      podNamespace: pod.namespace,
      podUid: pod.uid,
      ifName: IF_NAME,
      netnsPath: pod.netnsPath,
      cniArgs,
      list,
      capabilityArgs,
      result: null,
    };
    await this.cache.save(record);
    return record;
  }

  /** ADD of every plugin in order, in the pinned netns; the result saved, or everything rolled back. */
  private async addAll(pod: PodNetworkSpec, record: AttachmentRecord): Promise<PodNetworkResult> {
    const { list } = record;
    let prevResult: unknown = undefined;
    let parsed: CniResult | undefined;
    let failed: { index: number; err: unknown } | undefined;
    if (!isNetnsUsable(pod.netnsPath)) {
      failed = { index: -1, err: invalidArgument(`network namespace "${pod.netnsPath}" of pod ${pod.id} is not a network namespace`) };
    } else if (!pod.loopbackUp && !list.plugins.some((p) => p.type === 'loopback')) {
      try {
        await this.loopbackUp(pod, list.cniVersion, record.cniArgs);
      } catch (err) {
        failed = { index: -1, err };
      }
    }
    if (!failed) {
      for (const [index, plugin] of list.plugins.entries()) {
        try {
          const out = await this.run('ADD', record, plugin, pod.netnsPath, prevResult);
          if (out !== undefined) prevResult = out;
        } catch (err) {
          failed = { index, err };
          break;
        }
      }
    }
    if (!failed) {
      const lastIndex = list.plugins.length - 1;
      try {
        parsed = parseResult(prevResult, list.cniVersion);
      } catch (err) {
        failed = { index: lastIndex, err: new Error(`network "${list.name}" gave an unusable result: ${errorMessage(err)}`) };
      }
      if (parsed) {
        // Without the record a later teardown could not DEL, so failing to save it fails the setup.
        try {
          record.result = prevResult;
          await this.cache.save(record, { replacing: true });
        } catch (err) {
          record.result = null;
          failed = { index: lastIndex, err: new Error(`saving the CNI result: ${errorMessage(err)}`) };
        }
      }
    }
    if (failed || !parsed) {
      const cause = failed?.err;
      if (failed?.index === -1) {
        // No plugin of the list ran: the record alone goes, and the failure (already described) is thrown as it is.
        await this.cache.remove(record.network, record.podId);
        throw cause;
      }
      await this.rollback(record, failed?.index ?? list.plugins.length - 1, prevResult, pod.netnsPath);
      throw wrapError(`setting up network "${list.name}" for pod ${pod.namespace}/${pod.name} (${pod.id})`, cause);
    }
    const ips = podIps(parsed).map(({ ip, prefixLength, gateway, version }) => ({
      ip,
      prefixLength,
      version,
      ...(gateway ? { gateway } : {}),
    }));
    this.logger.info('pod network set up', { pod: pod.id, network: list.name, ips: ips.map((i) => i.ip) });
    return { network: list.name, interfaces: parsed.interfaces, ips, result: parsed };
  }

  /**
   * Detaches the pod from every network it was attached to, with the cached
   * config and result. Idempotent; works without the netns (IPAM and iptables
   * state is still released). Throws (keeping the record, to retry) if a DEL failed.
   */
  async teardown(pod: PodNetworkRef): Promise<void> {
    this.checkPodId(pod.id);
    await this.podLocks.run(pod.id, () => this.teardownLocked(pod));
  }

  /**
   * Pods with an attachment record. On startup the daemon can tear down those
   * that belong to no known sandbox (e.g. removed while berthd was down).
   */
  attachedPodIds(): Promise<string[]> {
    return this.cache.podIds();
  }

  /** CHECK every plugin of the pod's attachment(s) (cniVersion 0.4.0+, unless the list disables it). */
  async check(pod: PodNetworkRef): Promise<void> {
    this.checkPodId(pod.id);
    await this.podLocks.run(pod.id, async () => {
      const { records } = await this.cache.forPod(pod.id);
      const attached = records.filter((r) => r.result !== null);
      if (attached.length === 0) throw notFound(`pod ${pod.id} is not attached to any CNI network`);
      for (const rec of attached) {
        if (!atLeast040(rec.list.cniVersion) || rec.list.disableCheck) continue;
        const netns = pod.netnsPath || rec.netnsPath;
        if (!isNetnsUsable(netns))
          throw failedPrecondition(`network namespace ${netns} of pod ${pod.id} is gone; cannot check network "${rec.network}"`);
        for (const plugin of rec.list.plugins) {
          try {
            await this.run('CHECK', rec, plugin, netns, rec.result);
          } catch (err) {
            throw wrapError(`checking network "${rec.network}" of pod ${pod.id}`, err);
          }
        }
      }
    });
  }

  private async teardownLocked(pod: PodNetworkRef): Promise<void> {
    const { records, broken } = await this.cache.forPod(pod.id);
    for (const file of broken) {
      // Written atomically, so this is damage from outside; it cannot drive a DEL, and keeping it would fail every retry.
      this.logger.warn('removing unreadable CNI attachment record', { pod: pod.id, file });
      await fs.promises.rm(file, { force: true });
    }
    const errors: string[] = [];
    for (const rec of records) {
      const netns = pod.netnsPath || rec.netnsPath;
      const problems = await this.delAll(rec, rec.list.plugins.length - 1, rec.result ?? undefined, netns);
      if (problems.length > 0) {
        errors.push(...problems);
        continue;
      }
      await this.cache.remove(rec.network, rec.podId);
      this.logger.info('pod network torn down', { pod: pod.id, network: rec.network });
    }
    if (errors.length > 0) {
      const what = `tearing down the network of pod ${pod.namespace}/${pod.name} (${pod.id})`;
      throw new BerthError('INTERNAL', `${what}: ${errors.join('; ')}`);
    }
  }

  /** DEL plugins[0..last] in reverse. Returns the failures (empty when all succeeded). */
  private async delAll(rec: AttachmentRecord, last: number, result: unknown, netnsPath: string): Promise<string[]> {
    const usable = isNetnsUsable(netnsPath);
    const netns = usable ? netnsPath : '';
    // Spec 0.4.0+: DEL gets the ADD result as prevResult.
    const prev = atLeast040(rec.list.cniVersion) && result !== null && result !== undefined ? result : undefined;
    const problems: string[] = [];
    for (let i = last; i >= 0; i--) {
      const plugin = rec.list.plugins[i];
      if (!plugin) continue;
      try {
        await this.run('DEL', rec, plugin, netns, prev);
      } catch (err) {
        problems.push(errorMessage(err));
      }
    }
    // Not only without a netns: also when the pod's interface is already gone, the plugins cannot find the
    // addresses and leave the chain behind. Removing absent rules is a harmless no-op.
    if (problems.length === 0 && hasMasqPlugin(rec.list.plugins.slice(0, last + 1)) && result) {
      try {
        await removeMasqRules(rec.network, rec.podId, parseResult(result, rec.list.cniVersion).ips);
      } catch (err) {
        this.logger.warn('could not remove leftover ipMasq rules', { pod: rec.podId, error: errorMessage(err) });
      }
    }
    return problems;
  }

  /**
   * After a failed ADD: DEL everything up to and including the failed plugin
   * (it may have half-done its work). The failed plugin's own DEL may fail for
   * the same reason its ADD did (a broken config), and the spec makes a failing
   * ADD clean up after itself, so only the earlier plugins' DELs must succeed.
   */
  private async rollback(rec: AttachmentRecord, failedIndex: number, prevResult: unknown, netnsPath: string): Promise<void> {
    const failedPlugin = rec.list.plugins[failedIndex];
    const ownProblems = failedPlugin
      ? await this.delAll({ ...rec, list: { ...rec.list, plugins: [failedPlugin] } }, 0, prevResult, netnsPath)
      : [];
    const problems = await this.delAll(rec, failedIndex - 1, prevResult, netnsPath);
    if (ownProblems.length > 0)
      this.logger.info('DEL of the plugin whose ADD failed also failed', { pod: rec.podId, problems: ownProblems });
    if (problems.length === 0) {
      await this.cache.remove(rec.network, rec.podId);
      return;
    }
    // The record stays: the kubelet's StopPodSandbox (teardown) retries the DEL.
    if (prevResult !== undefined) {
      rec.result = prevResult;
      await this.cache.save(rec);
    }
    this.logger.warn('cleanup after failed CNI ADD incomplete', { pod: rec.podId, problems });
  }

  private async loopbackUp(pod: PodNetworkSpec, cniVersion: string, cniArgs: string): Promise<void> {
    try {
      await invokePlugin({
        binDirs: this.options.binDirs,
        type: 'loopback',
        command: 'ADD',
        containerId: pod.id,
        netns: pod.netnsPath,
        ifName: 'lo',
        args: cniArgs,
        stdinConfig: { cniVersion, name: 'berth-loopback', type: 'loopback' },
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      throw wrapError(`bringing up loopback in pod ${pod.namespace}/${pod.name} (${pod.id})`, err);
    }
  }

  private run(
    command: CniCommand,
    rec: AttachmentRecord,
    plugin: PluginConf,
    netns: string,
    prevResult: unknown,
  ): Promise<unknown> {
    return invokePlugin({
      binDirs: this.options.binDirs,
      type: plugin.type,
      command,
      containerId: rec.podId,
      netns,
      ifName: rec.ifName,
      args: rec.cniArgs,
      stdinConfig: pluginStdin(rec.list, plugin, rec.capabilityArgs, prevResult),
      timeoutMs: this.timeoutMs,
    });
  }

  private cniArgs(pod: PodNetworkSpec): string {
    return [
      'IgnoreUnknown=1',
      `K8S_POD_NAMESPACE=${cniArgValue('namespace', pod.namespace)}`,
      `K8S_POD_NAME=${cniArgValue('name', pod.name)}`,
      `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`,
      `K8S_POD_UID=${cniArgValue('uid', pod.uid)}`,
    ].join(';');
  }

  private capabilityArgs(pod: PodNetworkSpec): CapabilityArgs {
    const caps: CapabilityArgs = {};
    const ports = (pod.portMappings ?? [])
      .filter((m) => m.hostPort > 0)
      .map((m) => ({
        hostPort: m.hostPort,
        containerPort: m.containerPort,
        protocol: String(m.protocol || 'TCP').toLowerCase(),
        ...(m.hostIp ? { hostIP: m.hostIp } : {}),
      }));
    if (ports.length > 0) caps.portMappings = ports;
    const bw = pod.bandwidth;
    if (bw && ((bw.ingressRate ?? 0) > 0 || (bw.egressRate ?? 0) > 0)) {
      caps.bandwidth = {};
      if ((bw.ingressRate ?? 0) > 0)
        Object.assign(caps.bandwidth, { ingressRate: bw.ingressRate, ingressBurst: UNLIMITED_BURST });
      if ((bw.egressRate ?? 0) > 0)
        Object.assign(caps.bandwidth, { egressRate: bw.egressRate, egressBurst: UNLIMITED_BURST });
    }
    if (this.ipRanges.length > 0) caps.ipRanges = this.ipRanges.map((r) => r.map((s) => ({ ...s })));
    if (pod.dns) caps.dns = { servers: pod.dns.servers ?? [], searches: pod.dns.searches ?? [], options: pod.dns.options ?? [] };
    return caps;
  }

  private checkPodId(id: string): void {
    // It names the cache file and is CNI_CONTAINERID, so it must be a plain token.
    if (!POD_ID.test(id)) throw invalidArgument(`pod sandbox id "${id}" is not a valid id`);
  }
}

/**
 * The stdin config of one plugin: its entry plus the list's name and version,
 * runtimeConfig for the capabilities it declares, and prevResult.
 */
export function pluginStdin(
  list: NetworkConfigList,
  plugin: PluginConf,
  caps: CapabilityArgs,
  prevResult: unknown,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, declared] of Object.entries(plugin.capabilities ?? {})) {
    const value = (caps as Record<string, unknown>)[cap];
    if (declared === true && value !== undefined) runtimeConfig[cap] = value;
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  else delete conf.prevResult;
  return conf;
}
