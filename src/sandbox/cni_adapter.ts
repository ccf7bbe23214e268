// The pod network hook of the sandbox (CNI in berthd, a fake in tests), the
// CNI manager's own requests (src/network/cni.ts) built from a pod record,
// and the adapter from the hook to the CNI manager.
import * as path from 'node:path';
import { bandwidthFromAnnotations } from '../network/bandwidth';
import type { RuntimeMetrics } from '../metrics/runtime_metrics';
import type { CniManager, PodNetworkRef, PodNetworkSpec } from '../network/cni';
import type { SandboxRecord } from './record';

/** The pod network (CNI); wired in by the daemon. */
export interface PodNetwork {
  /**
   * Attaches the pod. Called while its netns is being pinned: does what it
   * can beforehand, touches pod.netnsPath only once `netnsPinned` resolves,
   * and rejects, leaving nothing attached, when that rejects.
   */
  setupPodNetwork(pod: PodNetworkSpec, netnsPinned: Promise<void>): Promise<{ ips: string[] }>;
  /** Must be idempotent: called by every StopPodSandbox and on rollback. */
  teardownPodNetwork(pod: PodNetworkRef): Promise<void>;
}

/** The pod's identity and pinned netns (the file may be gone when tearing down after a reboot). */
export function podNetworkRef(rec: SandboxRecord, nsPaths = rec.nsPaths): PodNetworkRef & { netnsPath: string } {
  const { id, metadata } = rec;
  const netnsPath = nsPaths.net ?? path.join(rec.stateDir, 'ns', 'net');
  return { id, name: metadata.name, namespace: metadata.namespace, uid: metadata.uid, netnsPath };
}

/** What setup needs; `nsPaths` while the record does not have them yet (RunPodSandbox). */
export function podNetworkSpec(rec: SandboxRecord, nsPaths = rec.nsPaths): PodNetworkSpec {
  return {
    ...podNetworkRef(rec, nsPaths),
    // berth-pinns brought the pinned namespace's loopback up.
    loopbackUp: true,
    portMappings: rec.config.portMappings,
    dns: rec.config.dnsConfig,
    bandwidth: bandwidthFromAnnotations(rec.config.annotations),
  };
}

/** CNI ADD and DEL, timed and their failures counted (berth_cni_operation_*). */
export function cniPodNetwork(cni: CniManager, metrics: Pick<RuntimeMetrics, 'cni'>): PodNetwork {
  return {
    async setupPodNetwork(pod: PodNetworkSpec, netnsPinned: Promise<void>): Promise<{ ips: string[] }> {
      // Timed from the moment the netns is pinned: the preparation beside pinning is not ADD's time.
      const res = await cni.setup(pod, netnsPinned, (add) => metrics.cni('add', add));
      return { ips: res.ips.map((i) => i.ip) };
    },
    teardownPodNetwork: (pod: PodNetworkRef) => metrics.cni('del', () => cni.teardown(pod)),
  };
}
