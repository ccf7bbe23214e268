// A minimal streaming tar writer (POSIX ustar, PAX 'path' records for long
// names) for image archives: directories and regular files whose bodies are
// streamed from a Readable, so nothing larger than a chunk is held.
import type { Readable } from 'node:stream';
import { internal } from '../../errors';

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, flag: string, mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(mtime, 12), 136, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'latin1');
  return h;
}

const padding = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(body);
  // The length field counts its own digits.
  let len = base + 1;
  while (base + String(len).length !== len) len = base + String(len).length;
  return Buffer.from(`${len}${body}`);
}

/** The blocks of one entry's header (with a PAX header first when the name is long). */
function headerBlocks(name: string, size: number, flag: string, mode: number, mtime: number): Buffer[] {
  if (Buffer.byteLength(name) <= 100) return [header(name, size, flag, mode, mtime)];
  const pax = paxRecord('path', name);
  return [header('PaxHeaders/entry', pax.length, 'x', 0o644, mtime), pax, padding(pax.length), header(name.slice(0, 100), size, flag, mode, mtime)];
}

export type TarItem =
  | { kind: 'dir'; name: string }
  | { kind: 'file'; name: string; data: Buffer }
  | { kind: 'stream'; name: string; size: number; open: () => Readable };

/** Yields the archive's bytes; stream entries are opened one at a time and must deliver exactly `size` bytes. */
export async function* tarStream(items: Iterable<TarItem>, mtime = Math.floor(Date.now() / 1000)): AsyncGenerator<Buffer> {
  for (const item of items) {
    if (item.kind === 'dir') {
      const name = item.name.endsWith('/') ? item.name : `${item.name}/`;
      yield* headerBlocks(name, 0, '5', 0o755, mtime);
      continue;
    }
    if (item.kind === 'file') {
      yield* headerBlocks(item.name, item.data.length, '0', 0o644, mtime);
      yield item.data;
      yield padding(item.data.length);
      continue;
    }
    yield* headerBlocks(item.name, item.size, '0', 0o644, mtime);
    let sent = 0;
    for await (const chunk of item.open()) {
      const b = chunk as Buffer;
      sent += b.length;
      if (sent > item.size) throw internal(`${item.name} grew while it was being archived`);
      yield b;
    }
    if (sent !== item.size) throw internal(`${item.name} shrank while it was being archived (${sent} of ${item.size} bytes)`);
    yield padding(item.size);
  }
  yield Buffer.alloc(2 * BLOCK);
}
