// Bytes (allocated blocks) and inodes used under a directory, like `du`:
// hard links count once, symlinks are not followed.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { errnoCode } from '../errors';

export async function diskUsage(root: string): Promise<{ bytes: bigint; inodes: bigint }> {
  const seen = new Set<string>();
  let bytes = 0n;
  let inodes = 0n;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
      throw err;
    }
    for (const name of names) {
      const p = path.join(dir, name);
      let st: fs.BigIntStats;
      try {
        st = await fsp.lstat(p, { bigint: true });
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw err;
      }
      if (st.isDirectory()) stack.push(p);
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) continue;
      seen.add(id);
      inodes++;
      bytes += st.blocks * 512n;
    }
  }
  return { bytes, inodes };
}
