// Directories named by requests: refusing the kernel's pseudo-filesystems, and
// creating them with a bounded number of steps. Node's recursive mkdir retries
// a level for as long as mkdir answers ENOENT; procfs answers ENOENT for a
// directory inside /proc/<pid> forever, which spun berthd at 100% CPU.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errnoCode, errorMessage } from '../errors';

/** Trees of kernel objects, not storage. /dev is devtmpfs, which shares tmpfs's magic, so it is refused by path. */
const PSEUDO_ROOTS = ['/proc', '/sys', '/dev'];

/** statfs f_type of the pseudo-filesystems (linux/magic.h). */
const PSEUDO_FS_TYPES: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x19800202, 'mqueue'],
  [0x42494e4d, 'binfmt_misc'],
  [0x6e736673, 'nsfs'],
]);

function underPseudoRoot(p: string): string | undefined {
  return PSEUDO_ROOTS.find((r) => p === r || p.startsWith(r + '/'));
}

/** The longest prefix of an absolute path that exists. */
function existingAncestor(p: string): string {
  let cur = p;
  while (cur !== '/' && !fs.existsSync(cur)) cur = path.dirname(cur);
  return cur;
}

/**
 * Why an absolute directory path cannot hold files berth writes (logs), or
 * undefined when it can: it is, or resolves (through `..` or symlinks) to, a
 * place under /proc, /sys or /dev, or its nearest existing ancestor is on a
 * pseudo-filesystem mounted elsewhere.
 */
export function pseudoFsProblem(dir: string): string | undefined {
  const normal = path.resolve(dir);
  const byName = underPseudoRoot(normal);
  if (byName) return `it is under ${byName}, a kernel pseudo-filesystem`;
  const ancestor = existingAncestor(normal);
  let real: string;
  try {
    real = fs.realpathSync(ancestor);
  } catch (err) {
    return `cannot resolve ${ancestor}: ${errorMessage(err)}`;
  }
  const byLink = underPseudoRoot(real);
  if (byLink) return `${ancestor} resolves to ${real}, under ${byLink}, a kernel pseudo-filesystem`;
  try {
    const type = PSEUDO_FS_TYPES.get(Number(fs.statfsSync(real).type));
    if (type) return `${real} is on a ${type} filesystem`;
  } catch (err) {
    return `cannot inspect the filesystem of ${real}: ${errorMessage(err)}`;
  }
  return undefined;
}

/**
 * mkdir -p from the leaf up: one mkdir when the parent exists (the common
 * case: a pod's directories under berth's state dir), walking up only past
 * missing parents, so at most two mkdirs per component of the path whatever
 * the filesystem answers (inside /proc a recursive mkdir never ends).
 * Existing components are kept as they are (mode included); one that is not a
 * directory is an ENOTDIR error.
 */
export async function makeDirs(dir: string, mode: number): Promise<void> {
  const target = path.resolve(dir);
  try {
    await fsp.mkdir(target, { mode });
    return;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') {
      if ((await fsp.stat(target)).isDirectory()) return;
      throw Object.assign(new Error(`ENOTDIR: ${target} exists and is not a directory`), { code: 'ENOTDIR' });
    }
    if (code !== 'ENOENT' || target === '/') throw err;
  }
  await makeDirs(path.dirname(target), mode);
  try {
    await fsp.mkdir(target, { mode });
  } catch (err) {
    // Made meanwhile by someone else: fine if it is a directory.
    if (errnoCode(err) !== 'EEXIST' || !(await fsp.stat(target)).isDirectory()) throw err;
  }
}
