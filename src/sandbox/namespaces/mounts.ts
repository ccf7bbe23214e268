// The mount table queries of the namespace code: what is mounted where,
// whether a namespace file is still pinned, and which namespace it is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unescapeMountPath } from '../../cgroups/cgroups';

export interface MountInfoEntry {
  mountpoint: string;
  fstype: string;
  /** Optional fields, e.g. ["shared:1"] or ["master:3"]. */
  optional: string[];
  root: string;
}

export function readMountInfo(): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    out.push({ root: unescapeMountPath(left[3]), mountpoint: unescapeMountPath(left[4]), optional: left.slice(6), fstype: right[0] });
  }
  return out;
}

/** Mounts at or below dir. */
export function mountsUnder(dir: string, table = readMountInfo()): MountInfoEntry[] {
  const d = path.resolve(dir);
  return table.filter((m) => m.mountpoint === d || m.mountpoint.startsWith(d + '/'));
}

/** The mount that contains path (the longest mountpoint prefix; the last one when stacked). */
export function mountOf(p: string, table = readMountInfo()): MountInfoEntry | undefined {
  const target = path.resolve(p);
  let best: MountInfoEntry | undefined;
  for (const m of table) {
    if (target === m.mountpoint || target.startsWith(m.mountpoint === '/' ? '/' : m.mountpoint + '/')) {
      if (!best || m.mountpoint.length >= best.mountpoint.length) best = m;
    }
  }
  return best;
}

/** Whether file is an nsfs bind mount (a pinned namespace). */
export function isPinned(file: string, table = readMountInfo()): boolean {
  const f = path.resolve(file);
  return table.some((m) => m.mountpoint === f && m.fstype === 'nsfs');
}

/** The inode of a namespace file: equal inodes mean the same namespace. */
export function nsInode(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}
