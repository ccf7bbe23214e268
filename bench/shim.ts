// berth-shim start-up: from spawning the shim to its ready line, with a stand-in
// runtime that does nothing (/bin/true), so the figure is the shim's own cost
// (exec, double fork, setsid, subreaper, sockets, running the runtime) and not
// runc's. Floor: spawning /bin/true itself, in the same run.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { shimBinaryPath } from '../src/runtime/shim_client';
import { latencyRow, out, tempDir, timed, withCleanups } from './common';

const N = 50;

/** Spawns the shim and resolves once it wrote its ready line (OK or ERR). */
function shimReady(dir: string, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const stateDir = path.join(dir, `s${i}`);
    fs.mkdirSync(stateDir, { recursive: true });
    const child = spawn(
      shimBinaryPath(),
      ['--id', `bench${i}`, '--bundle', dir, '--state-dir', stateDir, '--runtime-root', dir, '--runtime', '/bin/true', '--ready-fd', '3'],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] },
    );
    const ready = child.stdio[3] as net.Socket;
    ready.once('data', () => resolve());
    ready.once('error', reject);
    child.once('error', reject);
  });
}

export async function benchShim(): Promise<void> {
  await withCleanups(async (c) => {
    const dir = tempDir(c, 'berth-bench-shim-');
    const floor: number[] = [];
    const shim: number[] = [];
    for (let i = 0; i < N + 3; i++) {
      const f = await timed(
        () => new Promise<void>((resolve, reject) => spawn('/bin/true').once('exit', () => resolve()).once('error', reject)),
      );
      const s = await timed(() => shimReady(dir, i));
      if (i >= 3) {
        floor.push(f);
        shim.push(s);
      }
    }
    out(`berth-shim start-up to its ready line (runtime stand-in /bin/true), ${N} runs:`);
    out(latencyRow('floor  spawn /bin/true', floor));
    out(latencyRow('berth-shim start-up', shim, floor));
  });
}
