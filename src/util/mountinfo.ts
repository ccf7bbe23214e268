// /proc/self/mountinfo, read and parsed in one place for every module that
// asks what is mounted where (cgroup layout, pinned namespaces, mount
// propagation, overlay snapshots, idmapped mounts, the spec's bind mounts).
import * as fs from 'node:fs';
import * as path from 'node:path';

const MOUNTINFO = '/proc/self/mountinfo';

export interface MountInfoEntry {
  /** Where it is mounted (escapes decoded). */
  mountPoint: string;
  /** The directory of its filesystem that is mounted there (a bind mount's source). */
  root: string;
  /** Optional fields, e.g. "shared:12", "master:3". */
  optional: string[];
  fsType: string;
  /** The mount source (escapes decoded): a device, "overlay", "tmpfs", ... */
  source: string;
  /** The per-superblock options, comma-separated (an overlay's lowerdir/upperdir are here). */
  superOptions: string;
}

/** Decodes the octal escapes (\040 etc.) mountinfo uses for spaces, tabs, newlines and backslashes. */
export function unescapeMountPath(s: string): string {
  return s.includes('\\') ? s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))) : s;
}

/** mountinfo's escaping of a path, to look for it in the text before parsing. */
export function escapeMountPath(p: string): string {
  return p.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** Parses the text of a mountinfo file; malformed lines are skipped. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 6) continue;
    out.push({
      root: unescapeMountPath(left[3]),
      mountPoint: unescapeMountPath(left[4]),
      optional: left.slice(6),
      fsType: right[0] ?? '',
      source: unescapeMountPath(right[1] ?? ''),
      superOptions: right[2] ?? '',
    });
  }
  return out;
}

/** The mount table as the kernel prints it (to look for a string before parsing it). */
export function readMountInfoText(): Promise<string> {
  return fs.promises.readFile(MOUNTINFO, 'utf8');
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readMountInfoText());
}

/** The table, read synchronously: for start-up and recovery code, not for a request path. */
export function readMountInfoSync(): MountInfoEntry[] {
  return parseMountInfo(fs.readFileSync(MOUNTINFO, 'utf8'));
}

/** Mounts at or below dir. */
export function mountsUnder(dir: string, table: readonly MountInfoEntry[] = readMountInfoSync()): MountInfoEntry[] {
  const d = path.resolve(dir);
  return table.filter((m) => m.mountPoint === d || m.mountPoint.startsWith(d + '/'));
}

/** The mount holding `p` (absolute): the last-mounted entry whose mount point is the longest prefix. */
export function mountOf(p: string, table: readonly MountInfoEntry[] = readMountInfoSync()): MountInfoEntry | undefined {
  let best: MountInfoEntry | undefined;
  for (const m of table) {
    const mp = m.mountPoint;
    const inside = mp === '/' || p === mp || p.startsWith(mp.endsWith('/') ? mp : mp + '/');
    if (inside && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  return best;
}
