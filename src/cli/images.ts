// `berth images import|export`: streams archives to and from berthd's admin
// endpoint. The CLI never opens berthd's stores itself. Compressed archives
// (gzip, zstd) are decompressed here, so berthd only ever reads tar.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { AdminClient } from '../admin/client';
import { errnoCode, failedPrecondition } from '../errors';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Reads the first bytes of `source` without consuming them for the next reader. */
async function peek(source: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for (;;) {
    const c = source.read() as Buffer | null;
    if (c) {
      chunks.push(c);
      have += c.length;
      if (have >= n) break;
      continue;
    }
    if (source.readableEnded) break;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        source.off('readable', done);
        source.off('end', done);
        source.off('error', fail);
        resolve();
      };
      const fail = (err: Error) => {
        source.off('readable', done);
        source.off('end', done);
        reject(err);
      };
      source.once('readable', done);
      source.once('end', done);
      source.once('error', fail);
    });
    if (source.readableEnded && source.readableLength === 0) break;
  }
  const head = Buffer.concat(chunks);
  if (head.length) source.unshift(head);
  return head.subarray(0, n);
}

/** The archive as tar: gzip through zlib, zstd through the zstd command (Node 20 has no zstd). */
export async function decompressed(source: Readable): Promise<{ stream: Readable; format: 'tar' | 'gzip' | 'zstd' }> {
  const head = await peek(source, 4);
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) {
    const gunzip = zlib.createGunzip();
    source.on('error', (err) => gunzip.destroy(err));
    return { stream: source.pipe(gunzip), format: 'gzip' };
  }
  if (head.equals(ZSTD_MAGIC)) {
    const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = new PassThrough();
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (err) => {
      out.destroy(
        errnoCode(err) === 'ENOENT' ? failedPrecondition('the archive is zstd-compressed and the zstd command is not installed (apt install zstd)') : err,
      );
    });
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) out.destroy(failedPrecondition(`zstd could not decompress the archive: ${stderr.trim() || `exit ${code}`}`));
    });
    child.stdin.on('error', () => undefined); // zstd gave up early: its exit says why
    source.pipe(child.stdin);
    child.stdout.pipe(out);
    return { stream: out, format: 'zstd' };
  }
  return { stream: source, format: 'tar' };
}

export async function importCommand(client: AdminClient, file: string): Promise<number> {
  const source: Readable = file === '-' ? process.stdin : fs.createReadStream(file);
  const { stream } = await decompressed(source);
  const result = await client.importArchive(stream);
  for (const w of result.warnings) process.stderr.write(`berth: warning: ${w}\n`);
  for (const img of result.images) process.stdout.write(`imported ${img.id}${img.names.length ? ` ${img.names.join(' ')}` : ''}\n`);
  return 0;
}

export async function exportCommand(client: AdminClient, refs: string[], out: string | undefined): Promise<number> {
  if ((out === undefined || out === '-') && process.stdout.isTTY) {
    process.stderr.write('berth: refusing to write an archive to a terminal; use -o FILE or redirect stdout\n');
    return 2;
  }
  const archive = await client.exportImages(refs);
  if (out === undefined || out === '-') {
    await pipeline(archive, process.stdout);
    return 0;
  }
  // Written aside and renamed once complete: a cut-off export never looks like an archive.
  const tmp = `${out}.partial-${process.pid}`;
  try {
    await pipeline(archive, fs.createWriteStream(tmp, { mode: 0o600 }));
    fs.renameSync(tmp, out);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  return 0;
}
