// Mounting (Node has no mount API): mount(2)/umount(2) through berth-launch
// in berthd, else util-linux's mount/umount.
import { errorMessage, internal } from '../errors';
import { launcherInUse, mountSyscall, umountSyscall } from '../util/launch';
import { escapeMountPath, parseMountInfo, readMountInfoText } from '../util/mountinfo';
import { CommandError, findExecutable, run } from './exec';

/** The kernel copies mount data into one page; longer option strings fail. */
export const MAX_MOUNT_OPTIONS = 4095;

function binary(name: 'mount' | 'umount'): string {
  const bin = findExecutable(name);
  if (bin === undefined) throw internal(`${name} binary not found (util-linux mount package)`);
  return bin;
}

export async function isMountPoint(target: string): Promise<boolean> {
  const text = await readMountInfoText();
  // Most asks are answered "no" (the last check of an unmount): a path the
  // table does not even contain needs no parse of the whole table.
  if (!text.includes(escapeMountPath(target))) return false;
  return parseMountInfo(text).some((m) => m.mountPoint === target);
}

/** `mount -t overlay overlay -o <options> <target>`, run in `cwd` so lowerdir paths can be relative. */
export async function mountOverlay(options: string, target: string, cwd: string): Promise<void> {
  if (options.length > MAX_MOUNT_OPTIONS) {
    throw internal(`overlay mount options are ${options.length} bytes, over the kernel's ${MAX_MOUNT_OPTIONS}`);
  }
  try {
    if (launcherInUse()) {
      // What mount(8) passes for these options: "ro" is a flag, the rest is overlayfs's data.
      const readonly = options === 'ro' || options.startsWith('ro,');
      await mountSyscall('overlay', 'overlay', readonly ? MS_RDONLY : 0, readonly ? options.slice(3) : options, target, cwd);
    } else {
      await run(binary('mount'), ['-t', 'overlay', 'overlay', '-o', options, '--', target], { cwd });
    }
  } catch (err) {
    throw internal(`mounting overlay on ${target}: ${err instanceof CommandError ? err.message : errorMessage(err)}`, err);
  }
}

const MS_RDONLY = 1;

const UMOUNT_NOFOLLOW = 8;
/** More mounts stacked on one target than berth ever makes: something else keeps mounting there. */
const MAX_STACKED = 64;

/**
 * Unmounts every mount stacked on target (an absolute path without
 * symlinks). Through berth-launch it unmounts until the kernel says target
 * is no mount point (EINVAL), with no read of the mount table; else it reads
 * the table before each unmount.
 */
export async function umountAll(target: string): Promise<void> {
  for (let i = 0; i < MAX_STACKED; i++) {
    if (launcherInUse()) {
      try {
        await umountSyscall(target, UMOUNT_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EINVAL' || code === 'ENOENT') return;
        throw internal(`unmounting ${target}: ${errorMessage(err)}`, err);
      }
    } else {
      if (!(await isMountPoint(target))) return;
      await umount(target);
    }
  }
  throw internal(`unmounting ${target}: still mounted after ${MAX_STACKED} unmounts`);
}

export async function umount(target: string): Promise<void> {
  try {
    if (launcherInUse()) await umountSyscall(target);
    else await run(binary('umount'), ['--', target]);
  } catch (err) {
    throw internal(`unmounting ${target}: ${err instanceof CommandError ? err.message : errorMessage(err)}`, err);
  }
}
