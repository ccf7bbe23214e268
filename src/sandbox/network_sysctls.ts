// The sysctls berth sets by default in a pod's own network namespace
// (containerd 2.x's unprivileged ports and ICMP, as configured), fitted to
// the pod's user namespace.
import type { BerthConfig } from '../config/config';
import type { PodSpec } from './run';

/** containerd 2.x's defaults for pods with their own network namespace, as configured. */
export function podNetworkSysctls(config: BerthConfig): Record<string, string> {
  const out: Record<string, string> = {};
  if (config.runtime.enable_unprivileged_ports) out['net.ipv4.ip_unprivileged_port_start'] = '0';
  if (config.runtime.enable_unprivileged_icmp) out['net.ipv4.ping_group_range'] = '0 2147483647';
  return out;
}

/**
 * The pod-network sysctl defaults for one pod. In a user namespace the
 * kernel takes ping_group_range in that namespace's group ids, so "0
 * 2147483647" is refused (EINVAL): the range becomes the pod's mapped groups.
 */
export function defaultsForPod(defaults: Record<string, string>, userns: PodSpec['userns']): Record<string, string> {
  const key = 'net.ipv4.ping_group_range';
  if (!userns || defaults[key] === undefined || userns.gids.length === 0) return defaults;
  const lo = Math.min(...userns.gids.map((m) => m.containerId));
  const hi = Math.max(...userns.gids.map((m) => m.containerId + m.length - 1));
  return { ...defaults, [key]: `${lo} ${hi}` };
}
