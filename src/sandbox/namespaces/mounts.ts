// Namespace files: whether one is still pinned (an nsfs bind mount), and
// which namespace it is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMountInfoSync, type MountInfoEntry } from '../../util/mountinfo';

/** Whether file is an nsfs bind mount (a pinned namespace). */
export function isPinned(file: string, table: readonly MountInfoEntry[] = readMountInfoSync()): boolean {
  const f = path.resolve(file);
  return table.some((m) => m.mountPoint === f && m.fsType === 'nsfs');
}

/** The inode of a namespace file: equal inodes mean the same namespace. */
export function nsInode(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}
