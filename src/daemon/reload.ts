// What a SIGHUP can change without a restart: which config keys differ
// between the running config and the one just read, and which of those
// berthd applies in place. The rest are reported as needing a restart.
import type { BerthConfig } from '../config/config';

/** Keys applied on SIGHUP: read at each use (pins, hosts.toml dir, credentials) or cheap to swap (log level, CNI dir). */
const RELOADABLE = ['log.level', 'image.registry_config_dir', 'image.pinned_images', 'cni.conf_dir'];
const RELOADABLE_PREFIXES = ['image.credentials.'];

export function isReloadable(key: string): boolean {
  return RELOADABLE.includes(key) || RELOADABLE_PREFIXES.some((p) => key.startsWith(p));
}

function flatten(prefix: string, v: unknown, out: Map<string, string>): void {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(prefix ? `${prefix}.${k}` : k, x, out);
  } else {
    out.set(prefix, JSON.stringify(v));
  }
}

/** Leaf keys (map entries by name, e.g. image.credentials.HOST.password) that differ, added or removed included; sorted. */
export function changedKeys(running: BerthConfig, next: BerthConfig): string[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten('', running, a);
  flatten('', next, b);
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort();
}
