// Measures the snapshotter: unpack throughput of a ~50 MB layer (gzip and
// plain tar) against GNU `tar -xf` of the same archive, and the cost of one
// overlay mount+unmount for a 3-layer and a 128-layer image.
// Run as root: node dist/bench/snapshotter_bench.js
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { silentLogger } from '../src/log/logger';
import { Snapshotter } from '../src/snapshotter/snapshotter';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function chainOf(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha(`${out[out.length - 1]} ${d}`));
  return out;
}

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-snapbench-'));
  try {
    // ~50 MB: 20 × 2 MB half-compressible files + 3000 × 3 KB small files in 30 dirs.
    const src = path.join(base, 'src');
    for (let i = 0; i < 20; i++) {
      fs.mkdirSync(path.join(src, 'big'), { recursive: true });
      const half = randomBytes(1024 * 1024);
      fs.writeFileSync(path.join(src, 'big', `f${i}`), Buffer.concat([half, Buffer.alloc(1024 * 1024, i)]));
    }
    for (let d = 0; d < 30; d++) {
      fs.mkdirSync(path.join(src, 'small', `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) {
        fs.writeFileSync(path.join(src, 'small', `d${d}`, `f${f}`), randomBytes(1536).toString('hex'));
      }
    }
    const tarPath = path.join(base, 'layer.tar');
    execFileSync('tar', ['-C', src, '-cf', tarPath, '.']);
    const tar = fs.readFileSync(tarPath);
    const gzPath = `${tarPath}.gz`;
    fs.writeFileSync(gzPath, zlib.gzipSync(tar, { level: 6 }));
    const mb = tar.length / 1024 / 1024;
    console.log(`layer: ${mb.toFixed(1)} MB uncompressed, ${(fs.statSync(gzPath).size / 1024 / 1024).toFixed(1)} MB gzip`);

    const snap = new Snapshotter(path.join(base, 'root'), silentLogger());
    await snap.init();
    const diffId = sha(tar);
    // Each contender returns the CPU time it used (user+sys, ms), which a busy machine skews less than wall time.
    const runs: Array<[string, () => Promise<number>]> = [];
    let n = 0;
    const ours = (mediaType: string, file: string) => async (): Promise<number> => {
      const cpu = process.cpuUsage();
      await snap.applyLayer({
        chainId: sha(`${n++}`),
        diffId,
        mediaType,
        stream: fs.createReadStream(file, { highWaterMark: 256 * 1024 }),
      });
      const used = process.cpuUsage(cpu);
      return (used.user + used.system) / 1000;
    };
    runs.push(['berth applyLayer (tar+gzip)', ours('application/vnd.oci.image.layer.v1.tar+gzip', gzPath)]);
    runs.push(['berth applyLayer (tar)', ours('application/vnd.oci.image.layer.v1.tar', tarPath)]);
    for (const [flags, label] of [
      ['-xzf', 'GNU tar -xzf'],
      ['-xf', 'GNU tar -xf'],
    ] as const) {
      runs.push([
        label,
        async () => {
          const out = path.join(base, `x${n++}`);
          fs.mkdirSync(out);
          // bash's `time` reports the CPU of tar and its gzip child.
          const cmd = `TIMEFORMAT='%U %S'; time tar -C ${out} --same-owner -p ${flags} ${flags === '-xf' ? tarPath : gzPath}`;
          const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8' });
          const [user, sys] = r.stderr.trim().split(/\s+/).map(Number);
          return ((user ?? 0) + (sys ?? 0)) * 1000;
        },
      ]);
    }
    // Rounds interleave the contenders so a busy machine skews them alike.
    const wall = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    for (let round = 0; round < 3; round++) {
      for (const [label, fn] of runs) {
        execFileSync('sync');
        const t = now();
        const c = await fn();
        wall.set(label, [...(wall.get(label) ?? []), now() - t]);
        cpu.set(label, [...(cpu.get(label) ?? []), c]);
      }
    }
    for (const [label] of runs) {
      const best = Math.min(...(wall.get(label) ?? [Infinity]));
      const bestCpu = Math.min(...(cpu.get(label) ?? [Infinity]));
      console.log(
        `${label.padEnd(30)} best of 3: ${best.toFixed(0)} ms wall = ${(mb / (best / 1000)).toFixed(0)} MB/s; ` +
          `cpu ${bestCpu.toFixed(0)} ms`,
      );
    }

    // Mount cost.
    for (const layers of [3, 128]) {
      const tars = Array.from({ length: layers }, (_, i) =>
        execFileSync('tar', ['-C', src, '-cf', '-', `small/d${i % 30}/f${i % 100}`]),
      );
      const chains = chainOf(tars.map((t, i) => sha(`${layers}/${i}/${sha(t)}`)));
      for (let i = 0; i < layers; i++) {
        const t = tars[i] as Buffer;
        await snap.applyLayer({
          chainId: chains[i] as string,
          parentChainId: chains[i - 1],
          diffId: sha(t),
          mediaType: 'application/vnd.oci.image.layer.v1.tar',
          stream: Readable.from([t]),
        });
      }
      const target = path.join(base, `m${layers}`);
      fs.mkdirSync(target);
      const iterations = 20;
      let mountMs = 0;
      let umountMs = 0;
      let prepMs = 0;
      for (let i = 0; i < iterations; i++) {
        const key = `c${layers}-${i}`;
        let t = now();
        await snap.prepare(key, chains[layers - 1] as string);
        prepMs += now() - t;
        t = now();
        await snap.mount(key, target);
        mountMs += now() - t;
        t = now();
        await snap.unmount(target);
        umountMs += now() - t;
        await snap.remove(key);
      }
      console.log(
        `${layers}-layer image: prepare ${(prepMs / iterations).toFixed(1)} ms, mount ${(mountMs / iterations).toFixed(1)} ms, ` +
          `unmount ${(umountMs / iterations).toFixed(1)} ms (avg of ${iterations})`,
      );
    }
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
