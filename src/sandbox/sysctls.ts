// Which sysctls a pod may set: only namespaced ones, and only in namespaces
// the pod owns (a pod on the host network must not change the host's net.*).
import { invalidArgument } from '../errors';

type Owner = 'net' | 'ipc';

function ownerOf(key: string): Owner | undefined {
  const k = key.replace(/\//g, '.');
  if (k.startsWith('net.')) return 'net';
  if (k === 'kernel.sem' || k.startsWith('kernel.shm') || k.startsWith('kernel.msg') || k.startsWith('fs.mqueue.')) return 'ipc';
  return undefined;
}

/** Throws INVALID_ARGUMENT for a sysctl the pod may not set. */
export function validateSysctls(sysctls: Record<string, string>, podNet: boolean, podIpc: boolean): void {
  for (const [key, value] of Object.entries(sysctls)) {
    if (!/^[A-Za-z0-9_.\-/]+$/.test(key) || key.includes('..') || key.startsWith('/') || key.startsWith('.')) {
      throw invalidArgument(`sysctl ${JSON.stringify(key)}: not a valid sysctl name`);
    }
    if (/[\n\0]/.test(value)) throw invalidArgument(`sysctl ${key}: value must be a single line`);
    const owner = ownerOf(key);
    if (!owner) {
      throw invalidArgument(
        `sysctl ${key} is not namespaced; a pod may only set net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*`,
      );
    }
    if (owner === 'net' && !podNet) throw invalidArgument(`sysctl ${key} cannot be set on a pod that uses the host network`);
    if (owner === 'ipc' && !podIpc) throw invalidArgument(`sysctl ${key} cannot be set on a pod that uses the host IPC namespace`);
  }
}
