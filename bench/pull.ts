// Cold image pulls into berthd from a docker-registry on loopback: a ~100 MB
// image of 6 gzip layers (incompressible data), pulled RUNS times with the
// image removed in between, with berthd's peak RSS; then one-layer images of
// 16 MiB and 64 MiB, to show berthd's memory does not grow with layer size.
// Floor, in the same run: each blob fetched with curl from the same registry
// and piped into `tar -xzf`, one layer after the other.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { Layer } from '../test/helpers/registry';
import { type BerthBench, cpuMsOf, mib, mustRun, nowMs, out, RssSampler, startBerth, statusKb, tempDir, withCleanups } from './common';

// Five: the other helpers' load on a 2-core machine moves single runs by 2x.
const RUNS = 5;
const BIG_LAYERS = 6;
const MiB = 1024 * 1024;

/** A gzip layer holding one file of `size` random bytes, built with tar in `dir`; its blob is read back for the pusher. */
export async function randomLayer(dir: string, name: string, size: number): Promise<Layer> {
  const src = path.join(dir, `${name}-src`);
  fs.mkdirSync(path.join(src, 'data'), { recursive: true });
  const file = fs.openSync(path.join(src, 'data', name), 'w');
  for (let left = size; left > 0; left -= MiB) fs.writeSync(file, randomBytes(Math.min(MiB, left)));
  fs.closeSync(file);
  const tar = path.join(dir, `${name}.tar`);
  await mustRun('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', src, '-cf', tar, '.']);
  fs.rmSync(src, { recursive: true });
  const diffHash = createHash('sha256');
  const gz = `${tar}.gz`;
  await pipeline(
    fs.createReadStream(tar, { highWaterMark: MiB }),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const c of chunks) {
        diffHash.update(c);
        yield c;
      }
    },
    zlib.createGzip({ level: 1 }),
    fs.createWriteStream(gz),
  );
  fs.rmSync(tar);
  const blob = fs.readFileSync(gz);
  fs.rmSync(gz);
  return {
    blob,
    digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`,
    diffId: `sha256:${diffHash.digest('hex')}`,
    mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  };
}

function duKb(dir: string): Promise<number> {
  return mustRun('du', ['-sk', dir]).then((s) => Number(s.split('\t')[0]));
}

interface PullFigures {
  ms: number;
  peakKb: number;
  beforeKb: number;
  /** CPU time (user + system, all threads) berthd spent on the pull. */
  cpuMs: number;
}

/** Removes the image (if present) and pulls it, sampling berthd's VmRSS every 20 ms. */
export async function coldPull(b: BerthBench, image: string): Promise<PullFigures> {
  await b.berthd.cri.image.RemoveImage({ image: { image } });
  const beforeKb = statusKb(b.pid, 'VmRSS');
  const sampler = new RssSampler(b.pid, 20);
  const cpuBefore = cpuMsOf(b.pid);
  const t = nowMs();
  try {
    await b.berthd.cri.image.PullImage({ image: { image } }, { deadlineMs: 300_000 });
  } finally {
    sampler.stop();
  }
  return { ms: nowMs() - t, peakKb: sampler.maxKb, beforeKb, cpuMs: cpuMsOf(b.pid) - cpuBefore };
}

/**
 * The floor: `curl | tar -xzf` of each blob in turn into a fresh directory;
 * with `verify`, also sha256 of the blob and of the tar stream (the digest
 * and diffID checks berthd makes).
 */
const FLOOR_PLAIN = 'curl -sSf "$1" | tar -xzf - -C "$2"';
const FLOOR_VERIFY = 'curl -sSf "$1" | tee >(sha256sum >/dev/null) | gzip -dc | tee >(sha256sum >/dev/null) | tar -xf - -C "$2"; wait';
/** Ends the script with the CPU time its children used (bash's `times`: user and system, as "XmY.YYYs"). */
const WITH_TIMES = '; times';

function timesMs(out: string): number {
  // The second line of `times` is the children's user and system time.
  const line = out.trim().split('\n').pop() ?? '';
  let ms = 0;
  for (const m of line.matchAll(/(\d+)m([\d.]+)s/g)) ms += (Number(m[1]) * 60 + Number(m[2])) * 1000;
  return ms;
}

async function floorPull(host: string, repo: string, layers: Layer[], into: string, verify: boolean): Promise<{ ms: number; cpuMs: number }> {
  fs.mkdirSync(into);
  let cpuMs = 0;
  const t = nowMs();
  for (const l of layers) {
    const out = await mustRun('bash', ['-c', (verify ? FLOOR_VERIFY : FLOOR_PLAIN) + WITH_TIMES, 'sh', `http://${host}/v2/${repo}/blobs/${l.digest}`, into]);
    cpuMs += timesMs(out);
  }
  const ms = nowMs() - t;
  fs.rmSync(into, { recursive: true, force: true });
  return { ms, cpuMs };
}

export async function benchPull(): Promise<void> {
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-bench-pull-');
    const b = await startBerth(c);
    const rssStart = statusKb(b.pid, 'VmRSS');
    const hwmStart = statusKb(b.pid, 'VmHWM');

    const tBuild = nowMs();
    const big: Layer[] = [];
    for (let i = 0; i < BIG_LAYERS; i++) big.push(await randomLayer(base, `big${i}`, 16 * MiB));
    await b.pusher.pushImage('bench/big', '1', { layers: big, config: { Env: ['PATH=/bin'], Cmd: ['true'] } });
    big.forEach((l) => (l.blob = Buffer.alloc(0))); // the registry has them; do not keep ~100 MB here
    const one16 = await randomLayer(base, 'one16', 16 * MiB);
    await b.pusher.pushImage('bench/one16', '1', { layers: [one16], config: { Cmd: ['true'] } });
    const one16Size = one16.blob.length;
    one16.blob = Buffer.alloc(0);
    const one64 = await randomLayer(base, 'one64', 64 * MiB);
    await b.pusher.pushImage('bench/one64', '1', { layers: [one64], config: { Cmd: ['true'] } });
    const one64Size = one64.blob.length;
    one64.blob = Buffer.alloc(0);
    const bigBytes = (await Promise.all(big.map((l) => fetchSize(b.registry.host, 'bench/big', l.digest)))).reduce((a, x) => a + x, 0);
    out(`built and pushed the images in ${((nowMs() - tBuild) / 1000).toFixed(1)} s`);

    // Layer size vs memory first, on a daemon that has only pulled the small busybox image.
    out(`berthd VmRSS ${mib(rssStart)} after start (VmHWM ${mib(hwmStart)}); RSS sampled every 20 ms during each pull`);
    const sizes: Array<[string, string, number]> = [
      ['1 layer 16 MiB', `${b.registry.host}/bench/one16:1`, one16Size],
      ['1 layer 64 MiB', `${b.registry.host}/bench/one64:1`, one64Size],
    ];
    await coldPull(b, sizes[0][1]); // warm-up: the first big pull's one-off costs are not per-byte
    // Two runs each: when V8 collects garbage varies, so one growth figure alone says little.
    for (const [label, image, size] of sizes) {
      for (let r = 1; r <= 2; r++) {
        const f = await coldPull(b, image);
        out(
          `berthd pull ${label} (run ${r})  ${(f.ms / 1000).toFixed(2)} s  ${(size / MiB / (f.ms / 1000)).toFixed(1)} MiB/s  ` +
            `VmRSS before ${mib(f.beforeKb)}, peak ${mib(f.peakKb)}: growth ${mib(f.peakKb - f.beforeKb)}`,
        );
      }
      await b.berthd.cri.image.RemoveImage({ image: { image } });
    }

    const bigImage = `${b.registry.host}/bench/big:1`;
    const rootAfterRmi: number[] = [];
    const berth: PullFigures[] = [];
    const floor: Array<{ ms: number; cpuMs: number }> = [];
    const floorVerify: Array<{ ms: number; cpuMs: number }> = [];
    const hwmBefore = statusKb(b.pid, 'VmHWM');
    for (let i = 0; i < RUNS; i++) {
      floor.push(await floorPull(b.registry.host, 'bench/big', big, path.join(base, `floor${i}`), false));
      floorVerify.push(await floorPull(b.registry.host, 'bench/big', big, path.join(base, `floorv${i}`), true));
      await b.berthd.cri.image.RemoveImage({ image: { image: bigImage } });
      rootAfterRmi.push(await duKb(b.berthd.root));
      berth.push(await coldPull(b, bigImage));
    }
    const hwmAfter = statusKb(b.pid, 'VmHWM');
    const mbs = (ms: number): string => `${(bigBytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`;
    out(`image bench/big: ${BIG_LAYERS} gzip layers, ${(bigBytes / 1e6).toFixed(1)} MB compressed; ${RUNS} cold runs (rmi before each)`);
    for (let i = 0; i < RUNS; i++) {
      const f = berth[i];
      out(
        `run ${i + 1}: floor ${(floor[i].ms / 1000).toFixed(2)} s, floor+sha256 ${(floorVerify[i].ms / 1000).toFixed(2)} s, ` +
          `berthd ${(f.ms / 1000).toFixed(2)} s ${mbs(f.ms)} (ratio ${(f.ms / floor[i].ms).toFixed(2)}x); ` +
          `CPU floor ${floor[i].cpuMs.toFixed(0)} ms, berthd ${f.cpuMs.toFixed(0)} ms; berthd VmRSS before ${mib(f.beforeKb)} peak ${mib(f.peakKb)}; ` +
          `berthd root before the pull ${mib(rootAfterRmi[i])}`,
      );
    }
    const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
    const bm = med(berth.map((f) => f.ms));
    const fm = med(floor.map((f) => f.ms));
    const fv = med(floorVerify.map((f) => f.ms));
    const bc = med(berth.map((f) => f.cpuMs));
    const fc = med(floor.map((f) => f.cpuMs));
    const fvc = med(floorVerify.map((f) => f.cpuMs));
    out(`median floor  curl | tar -xzf, layer by layer          ${(fm / 1000).toFixed(2)} s  ${mbs(fm)}`);
    out(`median floor  same + sha256 of blob and of tar stream  ${(fv / 1000).toFixed(2)} s  ${mbs(fv)}`);
    out(`median berthd PullImage (cold)                         ${(bm / 1000).toFixed(2)} s  ${mbs(bm)}  ratio ${(bm / fm).toFixed(2)}x (vs floor+sha256 ${(bm / fv).toFixed(2)}x)`);
    out(`median CPU per pull (user + system, all threads): floor ${fc.toFixed(0)} ms, floor+sha256 ${fvc.toFixed(0)} ms, berthd ${bc.toFixed(0)} ms (the registry's not counted)`);
    out(`berthd peak VmRSS over the big pulls ${mib(Math.max(...berth.map((f) => f.peakKb)))}; VmHWM before ${mib(hwmBefore)}, after ${mib(hwmAfter)}`);
    await b.berthd.cri.image.RemoveImage({ image: { image: bigImage } });
    out(`berthd after removing the images: VmRSS ${mib(statusKb(b.pid, 'VmRSS'))}, root ${mib(await duKb(b.berthd.root))}`);
  });
}

async function fetchSize(host: string, repo: string, digest: string): Promise<number> {
  const out = await mustRun('curl', ['-sSfI', `http://${host}/v2/${repo}/blobs/${digest}`]);
  return Number(/content-length:\s*(\d+)/i.exec(out)?.[1] ?? 0);
}
