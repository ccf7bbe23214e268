// Adapts the CNI manager (src/network/cni.ts) to the sandbox service's PodNetwork hook.
import type { CniManager } from '../network/cni';
import { bandwidthFromAnnotations } from '../network/bandwidth';
import type { PodNetwork, PodNetworkRequest } from './service';

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
