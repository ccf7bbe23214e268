// rm -r of berth's own directories (a pod's state and files, a container's
// state and shim dirs) that never goes through something still mounted
// there: rm -r through a mount deletes what is mounted. berth-durable.node's
// removeTree (src/durable/remove_tree.c) lets the kernel refuse each mount
// point as it opens the entry (openat2 RESOLVE_NO_XDEV) and runs the whole
// walk as one threadpool job; without the module, or on a kernel without
// openat2, the mount table is read and node's fs.rm does the walk.
import * as fs from 'node:fs';
import { internal } from '../errors';
import { call, durableModule } from './durable_fs';
import { lazy } from './lazy';
import { mountsUnder } from './mountinfo';
import { settleAll } from './settle';

/** The module's removeTree, as a promise. */
export type NativeRemoveTree = (dir: string) => Promise<unknown>;

export const nativeRemoveTree = lazy((): NativeRemoveTree | null => {
  const mod = durableModule();
  const fn = mod?.removeTree;
  return fn ? (dir: string) => call((done) => fn.call(mod, dir, done)) : null;
});

/** Set once the kernel said it has no openat2: from then on the fallback. */
let noOpenat2 = false;

/**
 * Removes `dir` (absolute) and everything below it; a missing dir is fine.
 * When anything at or below it is mounted, removes none of it and throws
 * (INTERNAL, naming the mount point). `native` null: the fallback.
 */
export async function removeTree(dir: string, native = nativeRemoveTree()): Promise<void> {
  if (native && !noOpenat2) {
    try {
      await native(dir);
      return;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EXDEV') throw internal(`cannot remove ${dir}: still mounted: ${e.path ?? dir}`);
      if (e.code !== 'ENOSYS') throw internal(`cannot remove ${dir}: ${e.message}`, err);
      noOpenat2 = true;
    }
  }
  const mounted = mountsUnder(dir);
  if (mounted.length > 0) throw internal(`cannot remove ${dir}: still mounted: ${mounted.map((m) => m.mountPoint).join(', ')}`);
  await fs.promises.rm(dir, { recursive: true, force: true });
}

/** removeTree of each directory, side by side; the first failure is thrown once all have settled. */
export async function removeTrees(dirs: readonly string[]): Promise<void> {
  await settleAll(dirs.map((d) => removeTree(d)));
}
