// Shared fixtures for snapshotter tests: a temp dir holding the snapshotter
// root and a sentinel "host" dir outside it, and helpers to apply tar buffers.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { umount } from '../../src/snapshotter/mount';
import { readMountInfo } from '../../src/util/mountinfo';
import { Snapshotter } from '../../src/snapshotter/snapshotter';
import { silentLogger } from '../../src/log/logger';
import { sha256Digest } from '../helpers/tar_writer';

export const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const TAR = 'application/vnd.oci.image.layer.v1.tar';
export const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

export interface Env {
  base: string;
  root: string;
  /** Stands for the host: nothing a layer does may change it. */
  outside: string;
  snap: Snapshotter;
}

export async function makeEnv(): Promise<Env> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snap-'));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'hostfile'), 'host\n', { mode: 0o644 });
  fs.chmodSync(path.join(outside, 'hostfile'), 0o644);
  fs.mkdirSync(path.join(outside, 'b'), { mode: 0o755 });
  fs.chmodSync(path.join(outside, 'b'), 0o755);
  fs.utimesSync(path.join(outside, 'hostfile'), 1000, 1000);
  const snap = new Snapshotter(root, silentLogger());
  await snap.init();
  return { base, root, outside, snap };
}

/** Unmounts anything left under base, then removes it. */
export async function destroyEnv(env: Env | undefined): Promise<void> {
  if (env === undefined) return;
  await env.snap.close();
  const mounts = (await readMountInfo())
    .map((m) => m.mountPoint)
    .filter((mp) => mp.startsWith(`${env.base}/`))
    .sort((a, b) => b.length - a.length);
  for (const mp of mounts) await umount(mp);
  fs.rmSync(env.base, { recursive: true, force: true });
}

export async function assertNoMountsUnder(dir: string): Promise<void> {
  const left = (await readMountInfo()).filter((m) => m.mountPoint.startsWith(`${dir}/`));
  assert.deepEqual(
    left.map((m) => m.mountPoint),
    [],
  );
}

/** The sentinel dir is exactly as makeEnv left it. */
export function assertOutsideUntouched(env: Env): void {
  assert.deepEqual(fs.readdirSync(env.outside).sort(), ['b', 'hostfile']);
  assert.deepEqual(fs.readdirSync(path.join(env.outside, 'b')), []);
  const st = fs.lstatSync(path.join(env.outside, 'hostfile'));
  assert.equal(fs.readFileSync(path.join(env.outside, 'hostfile'), 'utf8'), 'host\n');
  assert.equal(st.mode & 0o7777, 0o644);
  assert.equal(st.nlink, 1);
  assert.equal(st.uid, 0);
  assert.equal(st.mtimeMs, 1000_000);
  assert.equal(fs.lstatSync(path.join(env.outside, 'b')).mode & 0o7777, 0o755);
}

export function streamOf(buf: Buffer, chunk = 7000): Readable {
  // Odd-sized chunks so headers straddle chunk boundaries.
  function* gen(): Generator<Buffer> {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  return Readable.from(gen());
}

/** Applies an uncompressed tar buffer as a gzip layer; returns its diff ID. */
export async function applyTar(
  snap: Snapshotter,
  tar: Buffer,
  chainId: string,
  parentChainId?: string,
  mediaType = GZIP,
): Promise<string> {
  const diffId = sha256Digest(tar);
  const blob = mediaType === GZIP ? zlib.gzipSync(tar) : tar;
  await snap.applyLayer({ chainId, parentChainId, diffId, mediaType, stream: streamOf(blob) });
  return diffId;
}

export function fakeChainId(label: string): string {
  return sha256Digest(Buffer.from(label));
}
