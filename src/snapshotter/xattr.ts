// Extended attributes. Node has no xattr API, so we run `setfattr` from
// Debian's attr package. Files and directories are addressed through
// /proc/<our pid>/fd/<fd> of a descriptor opened with O_NOFOLLOW, so the
// attribute lands on exactly the inode we opened, whatever the path does later.
import { failedPrecondition } from '../errors';
import { findExecutable, run } from './exec';

export const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Which layer-supplied xattrs we write. trusted.* (notably trusted.overlay.*,
 * which steers overlayfs itself) and other security.* namespaces are never
 * taken from an image; user.* and file capabilities are.
 */
export function layerXattrAllowed(name: string): boolean {
  return name.startsWith('user.') || name === 'security.capability';
}

export function setfattrPath(): string | undefined {
  return findExecutable('setfattr');
}

function requireSetfattr(why: string): string {
  const bin = setfattrPath();
  if (bin === undefined) {
    throw failedPrecondition(`${why} needs extended attributes, but setfattr is not installed (apt-get install attr)`);
  }
  return bin;
}

/** Sets one xattr on the inode behind our open descriptor `fd`. */
export async function setXattrOnFd(fd: number, name: string, value: Buffer, why: string): Promise<void> {
  const bin = requireSetfattr(why);
  const args = ['-n', name];
  if (value.length > 0) args.push('-v', `0x${value.toString('hex')}`);
  args.push(`/proc/${process.pid}/fd/${fd}`);
  await run(bin, args);
}

/** Sets one xattr on a path without following a final symlink (setfattr -h). Callers must have validated the path. */
export async function setXattrNoFollow(path: string, name: string, value: Buffer, why: string): Promise<void> {
  const bin = requireSetfattr(why);
  const args = ['-h', '-n', name];
  if (value.length > 0) args.push('-v', `0x${value.toString('hex')}`);
  args.push('--', path);
  await run(bin, args);
}
