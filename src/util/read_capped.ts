// Reads a small file whole, refusing one larger than `limit` before reading
// it: the size is checked on the open descriptor and the read stops at
// limit + 1 bytes, so a file that grows meanwhile (or a /proc or device file
// that reports size 0) cannot make us hold more.
import * as fs from 'node:fs';
import { invalidArgument } from '../errors';

export function readFileCapped(file: string, limit: number, what: string): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw invalidArgument(`${what} ${file} is not a regular file`);
    if (st.size > limit) throw invalidArgument(`${what} ${file} is ${st.size} bytes, over the ${limit}-byte limit`);
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > limit) throw invalidArgument(`${what} ${file} is over the ${limit}-byte limit`);
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}
