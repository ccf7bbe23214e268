// CRI round-trip latency: Version and Status against a real berthd, next to
// the floor of a bare grpc-js server answering the same Version RPC on a unix
// socket in the same process run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { TestBerthd } from '../test/helpers/berthd';
import { CriClient } from '../src/client/cri_client';
import { loadCri } from '../src/proto';
import { fmt, summary } from './stats';

const N = 500;

async function time(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 20; i++) await fn(); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return out;
}

/** A bare grpc-js server answering only Version: the floor of a CRI round trip. */
export async function floorServer(sock: string): Promise<grpc.Server> {
  const cri = loadCri();
  const server = new grpc.Server();
  server.addService(cri.runtime.v1.RuntimeService.service, {
    Version: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { version: '0.1.0', runtimeName: 'floor', runtimeVersion: '0', runtimeApiVersion: 'v1' }),
  } as grpc.UntypedServiceImplementation);
  await new Promise<void>((res, rej) =>
    server.bindAsync(`unix://${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
  );
  return server;
}

export async function benchRpc(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
  const floorSock = path.join(dir, 'floor.sock');
  const floor = await floorServer(floorSock);
  const floorClient = new CriClient(floorSock);
  const d = await TestBerthd.start({ args: ['--log-level', 'info'] });
  try {
    const base = summary(await time(N, () => floorClient.runtime.Version({ version: '' })));
    const ver = summary(await time(N, () => d.cri.runtime.Version({ version: '' })));
    const st = summary(await time(N, () => d.cri.runtime.Status({ verbose: false })));
    process.stdout.write(`samples per row: ${N}\n`);
    process.stdout.write(`floor  bare grpc-js Version   median ${fmt(base.median)} ms  p90 ${fmt(base.p90)} ms\n`);
    process.stdout.write(
      `berthd Version                median ${fmt(ver.median)} ms  p90 ${fmt(ver.p90)} ms  ratio ${(ver.median / base.median).toFixed(2)}x\n`,
    );
    process.stdout.write(
      `berthd Status                 median ${fmt(st.median)} ms  p90 ${fmt(st.p90)} ms  ratio ${(st.median / base.median).toFixed(2)}x\n`,
    );
    const rssKb = Number(fs.readFileSync(`/proc/${d.proc?.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    process.stdout.write(`berthd RSS after run: ${(rssKb / 1024).toFixed(1)} MiB\n`);
  } finally {
    floorClient.close();
    floor.forceShutdown();
    await d.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
