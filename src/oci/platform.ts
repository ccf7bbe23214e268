// Platforms (os/architecture/variant): which one this host is, and which
// entry of an image index or which single-platform image fits it, matched
// the way containerd's default platform matcher does.
import { notFound } from '../errors';
import type { Descriptor, ImageIndex } from './manifest';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const p: Platform = { os: 'linux', architecture: arch[process.arch] ?? process.arch };
  if (process.arch === 'arm') p.variant = 'v7';
  if (process.arch === 'arm64') p.variant = 'v8';
  return p;
}

/** "linux/arm64/v8": the parts that are set, joined by '/'. */
export function formatPlatform(p: { os?: string; architecture?: string; variant?: string }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * Whether an image built for `p` runs on `want`: same OS and architecture
 * (a part left empty matches any; the variant is not compared).
 */
export function runsOn(p: { os?: string; architecture?: string }, want: Platform = hostPlatform()): boolean {
  return (!p.os || p.os === want.os) && (!p.architecture || p.architecture === want.architecture);
}

/** Picks the index entry for `want`, as containerd's platform matcher would. */
export function selectPlatform(index: ImageIndex, want: Platform = hostPlatform()): Descriptor {
  const candidates = index.manifests.filter(
    (m) => m.platform && m.platform.os === want.os && m.platform.architecture === want.architecture,
  );
  // Exact variant first; arm64 entries usually carry no variant (means v8).
  const exact = candidates.find((m) => (m.platform?.variant ?? '') === (want.variant ?? ''));
  const lenient = candidates.find((m) => !m.platform?.variant || (want.architecture === 'arm64' && m.platform.variant === 'v8'));
  const chosen = exact ?? lenient ?? (want.architecture === 'amd64' ? undefined : candidates[0]);
  if (!chosen) {
    const have = index.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : '?')).join(', ');
    throw notFound(`no image for platform ${formatPlatform(want)} in the manifest list (it has: ${have || 'nothing'})`);
  }
  return chosen;
}
