// The two file system steps an atomic write is made of (src/util/atomic_file.ts),
// each as one job off the main thread: replace a file by way of a temp file,
// and fsync a directory. berth-durable.node (src/durable/) runs each step's
// syscalls as one libuv threadpool job; node's fs needs a round trip to the
// pool for every syscall (five for a replace, three for a directory sync),
// and each waits for the event loop to come round (measured: a record write
// 0.8 ms through fs.promises, 0.55 ms through the module). Where the module
// is missing (a tree not built) the same steps go through node's fs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getSystemErrorName } from 'node:util';

export interface DurableFs {
  /**
   * Creates (or truncates) `tmp`, writes `data`, fsyncs it when `syncFile`,
   * closes it and renames it over `target`. On failure `tmp` is removed.
   * With `keepOld`, an existing target is swapped with `tmp` where the file
   * system can (its inode then sits at `tmp`, for reuse: resolves true); an
   * existing `tmp` is written over, cut to length, and gets `mode` as asked
   * (no umask). With `syncDir`, that directory is fsynced after the rename, in
   * the same job.
   */
  replaceFile(
    tmp: string,
    target: string,
    data: Buffer,
    mode: number,
    syncFile: boolean,
    keepOld: boolean,
    syncDir?: string,
  ): Promise<boolean>;
  /** fsyncs a directory: the renames and unlinks made in it so far become durable. */
  syncDir(dir: string): Promise<void>;
}

/** The steps through node's fs: a threadpool round trip per syscall; no exchange (node has no renameat2). */
export const nodeDurableFs: DurableFs = {
  async replaceFile(tmp, target, data, mode, syncFile, keepOld, syncDir) {
    try {
      const fh = await fs.promises.open(tmp, 'w', mode);
      try {
        if (keepOld) await fh.chmod(mode);
        await fh.writeFile(data);
        if (syncFile) await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, target);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    if (syncDir !== undefined) await nodeDurableFs.syncDir(syncDir);
    return false;
  },
  async syncDir(dir) {
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

type Done = (errno: number, syscall: string, kept: boolean, path: string) => void;

interface DurableModule {
  replaceFile(tmp: string, target: string, data: Buffer, mode: number, syncFile: boolean, keepOld: boolean, dir: string, done: Done): void;
  syncDir(dir: string, done: Done): void;
  /** rm -r that removes nothing when an entry is a mount point (EXDEV, path = that entry); src/durable/remove_tree.c. */
  removeTree?(dir: string, done: Done): void;
}

/** An error shaped as node's fs makes them (code, errno, syscall, path). */
function fsError(errno: number, syscall: string, file: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno);
  return Object.assign(new Error(`${code}: ${syscall} '${file}'`), { code, errno: -errno, syscall, path: file });
}

/** Runs one job of the module; resolves with its `kept`. */
export function call(start: (done: Done) => void): Promise<boolean> {
  return new Promise((resolve, reject) => {
    start((errno, syscall, kept, file) => (errno === 0 ? resolve(kept) : reject(fsError(errno, syscall, file))));
  });
}

function moduleDurableFs(mod: DurableModule): DurableFs {
  return {
    replaceFile: (tmp, target, data, mode, syncFile, keepOld, syncDir) =>
      call((done) => mod.replaceFile(tmp, target, data, mode, syncFile, keepOld, syncDir ?? '', done)),
    syncDir: async (dir) => {
      await call((done) => mod.syncDir(dir, done));
    },
  };
}

/** build/ of the repository or of the installed tree (dist/src/util -> <root>/build). */
const MODULE_CANDIDATES = [
  path.resolve(__dirname, '..', '..', '..', 'build', 'berth-durable.node'),
  path.resolve(__dirname, '..', '..', 'build', 'berth-durable.node'),
];

/** berth-durable.node's functions, or undefined where it is missing or not what it should be. */
export function durableModule(candidates: readonly string[] = MODULE_CANDIDATES): DurableModule | undefined {
  const file = candidates.find((c) => fs.existsSync(c));
  if (file === undefined) return undefined;
  const mod = { exports: {} as Partial<DurableModule> };
  process.dlopen(mod, file);
  const { replaceFile, syncDir } = mod.exports;
  if (typeof replaceFile !== 'function' || typeof syncDir !== 'function') return undefined;
  return mod.exports as DurableModule;
}

/** The module's steps, or undefined where berth-durable.node is missing or not what it should be. */
export function nativeDurableFs(candidates: readonly string[] = MODULE_CANDIDATES): DurableFs | undefined {
  const mod = durableModule(candidates);
  return mod && moduleDurableFs(mod);
}
