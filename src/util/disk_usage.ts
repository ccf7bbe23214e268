// Bytes (allocated blocks) and inodes used under a directory, like `du`:
// hard links count once, symlinks are not followed.
//
// The walk uses synchronous readdir/lstat and gives the event loop a turn
// whenever it has held it for a few milliseconds (EventLoopBudget): the
// snapshotter re-measures every writable layer every few seconds, mostly
// near-empty directories, where a promise and a thread-pool round trip per
// entry cost several times the system call itself. Sizes are summed as
// numbers (exact below 2^53 bytes): a bigint lstat makes a dozen BigInts per
// entry; only an entry with several links is looked at again, with bigint
// dev and inode, to count it once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors';
import { EventLoopBudget } from './yield';

export async function diskUsage(root: string): Promise<{ bytes: bigint; inodes: bigint }> {
  const budget = new EventLoopBudget();
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
      throw err;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (st === undefined) continue; // removed meanwhile
      if (st.isDirectory()) stack.push(p);
      // Only a non-directory with more than one link can be met twice.
      else if (st.nlink > 1) {
        const exact = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
        if (exact === undefined) continue;
        const id = `${exact.dev}:${exact.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      inodes++;
      bytes += st.blocks * 512;
      await budget.maybeYield();
    }
  }
  return { bytes: BigInt(bytes), inodes: BigInt(inodes) };
}
