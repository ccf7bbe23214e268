// The per-pod files containers bind-mount: /etc/resolv.conf, /etc/hosts and
// /etc/hostname.
import * as fs from 'node:fs';
import type { DNSConfig__Output } from '../gen/runtime/v1/DNSConfig';
import { invalidArgument } from '../errors';
import { writeFileAtomic, writeFilesAtomic } from '../util/atomic_file';

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

/** Writes a pod file (0644) atomically, so a container never sees it half-written nor a crash a torn one. */
export function writePodFile(file: string, content: string): Promise<void> {
  return writeFileAtomic(file, content, { mode: 0o644 });
}

/** Pod files (0644), each atomic as writePodFile's, with one fsync of their directory for all. */
export function writePodFiles(files: ReadonlyArray<{ file: string; data: string }>): Promise<void> {
  return writeFilesAtomic(files, { mode: 0o644 });
}

/** The host's resolv.conf, or an empty file when it has none. */
export function hostResolvConf(): string {
  try {
    return fs.readFileSync(HOST_RESOLV_CONF, 'utf8');
  } catch {
    return '';
  }
}
