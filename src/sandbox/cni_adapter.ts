// The pod network hook of the sandbox (CNI in berthd, a fake in tests), the
// request it gets for a pod record, and the adapter to the CNI manager
// (src/network/cni.ts).
import * as path from 'node:path';
import type { DNSConfig__Output } from '../gen/runtime/v1/DNSConfig';
import type { PortMapping__Output } from '../gen/runtime/v1/PortMapping';
import type { CniManager } from '../network/cni';
import { bandwidthFromAnnotations } from '../network/bandwidth';
import type { SandboxRecord } from './record';

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

/** The request for a pod; `nsPaths` while the record does not have them yet (RunPodSandbox). */
export function podNetworkRequest(rec: SandboxRecord, nsPaths = rec.nsPaths): PodNetworkRequest {
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

export function cniPodNetwork(cni: CniManager): PodNetwork {
  return {
    async setupPodNetwork(pod: PodNetworkRequest): Promise<{ ips: string[] }> {
      const res = await cni.setup({
        id: pod.id,
        name: pod.name,
        namespace: pod.namespace,
        uid: pod.uid,
        netnsPath: pod.netnsPath,
        portMappings: pod.portMappings,
        dns: pod.dns,
        bandwidth: bandwidthFromAnnotations(pod.annotations),
      });
      return { ips: res.ips.map((i) => i.ip) };
    },
    async teardownPodNetwork(pod: PodNetworkRequest): Promise<void> {
      await cni.teardown({ id: pod.id, name: pod.name, namespace: pod.namespace, uid: pod.uid, netnsPath: pod.netnsPath });
    },
  };
}
