// The per-pod files containers bind-mount: /etc/resolv.conf, /etc/hosts and
// /etc/hostname.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DNSConfig__Output } from '../gen/runtime/v1/DNSConfig';
import { invalidArgument } from '../errors';
import { fsyncDir } from '../util/atomic_file';
import { settleAll } from '../util/settle';
import type { SandboxRecord } from './record';

export const HOST_RESOLV_CONF = '/etc/resolv.conf';

function checkDnsWords(kind: string, words: string[]): void {
  for (const w of words) {
    if (w === '' || /\s/.test(w)) throw invalidArgument(`dns_config.${kind}: ${JSON.stringify(w)} is empty or contains whitespace`);
  }
}

/** resolv.conf from the pod's DNS config; undefined when the config says nothing (use the host's). */
export function resolvConfFor(dns: DNSConfig__Output | null | undefined): string | undefined {
  if (!dns) return undefined;
  const { servers, searches, options } = dns;
  if (servers.length === 0 && searches.length === 0 && options.length === 0) return undefined;
  checkDnsWords('servers', servers);
  checkDnsWords('searches', searches);
  checkDnsWords('options', options);
  const lines: string[] = [];
  if (searches.length > 0) lines.push(`search ${searches.join(' ')}`);
  for (const s of servers) lines.push(`nameserver ${s}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** /etc/hosts: the usual loopback names, plus the pod's own name on its IP when it has one. */
export function hostsFor(hostname: string, ips: string[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of ips) lines.push(`${ip}\t${hostname}`);
  return lines.join('\n') + '\n';
}

export function validateHostname(hostname: string): void {
  // The kernel allows 64 bytes; Kubernetes names are shorter still.
  if (Buffer.byteLength(hostname) > 64 || /[\s\0/]/.test(hostname)) {
    throw invalidArgument(`hostname ${JSON.stringify(hostname)} is not valid (at most 64 bytes, no whitespace or "/")`);
  }
}

/**
 * Whether a pod's files must survive a power loss: only when the pod does.
 * A pod with a namespace of its own (pinned) or a berth-pause is NOTREADY
 * after a reboot (recovery.ts), so no container ever mounts its files again;
 * a pod on the host's namespaces stays READY.
 */
export function podFilesOutliveReboot(rec: Pick<SandboxRecord, 'namespaceModes' | 'userns'>): boolean {
  const m = rec.namespaceModes;
  return m.network !== 'POD' && m.ipc !== 'POD' && m.pid !== 'POD' && !rec.userns;
}

/**
 * Creates pod files (0644) that do not exist yet, side by side. No temp file
 * and rename: no container sees them before the pod is ready, and a crash
 * before that rolls the pod back. `durable`: fsynced, with their directory.
 */
export async function writeNewPodFiles(files: ReadonlyArray<{ file: string; data: string }>, durable: boolean): Promise<void> {
  const write = async ({ file, data }: { file: string; data: string }): Promise<void> => {
    if (!durable) return fs.promises.writeFile(file, data, { flag: 'wx', mode: 0o644 });
    const fh = await fs.promises.open(file, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  // Every write settles before a failure is reported (the rollback removes the directory).
  await settleAll(files.map(write));
  if (durable) await Promise.all([...new Set(files.map((f) => path.dirname(f.file)))].map((dir) => fsyncDir(dir)));
}

/** The host's resolv.conf, or an empty file when it has none. */
export function hostResolvConf(): string {
  try {
    return fs.readFileSync(HOST_RESOLV_CONF, 'utf8');
  } catch {
    return '';
  }
}
