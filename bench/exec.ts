// ExecSync and streaming exec (SPDY, as kubectl/crictl do it: Exec RPC, then
// the URL) of `true` in a running busybox container through berthd, next to
// the floor `runc exec <id> true` on a bare runc container of the same rootfs.
//
// EXEC_CPU_PROF=DIR: run berthd under `node --cpu-prof` and write its profile
// into DIR when it stops (bench/cpuprofile_summary.ts summarises it).
import * as path from 'node:path';
import { connectSpdy, execSpdy, isFailure } from '../test/helpers/stream_client';
import { benchUid, latencyRow, out, RuncFloor, startBerth, tempDir, timed, withCleanups } from './common';

const N = 50;
const WARMUP = 3;

export async function benchExec(): Promise<void> {
  await withCleanups(async (c) => {
    const base = tempDir(c, 'berth-bench-exec-');
    const floor = new RuncFloor(c, path.join(base, 'runc'));
    await floor.init();
    const floorId = `bench-exec-${process.pid}`;
    await floor.start(floorId);

    const profDir = process.env.EXEC_CPU_PROF;
    const b = await startBerth(c, { nodeArgs: profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir)}`, '--cpu-prof-interval', '100'] : [] });
    const rt = b.berthd.cri.runtime;
    const config = {
      metadata: { name: 'exec', namespace: 'bench', uid: benchUid('exec'), attempt: 0 },
      hostname: 'exec',
      logDirectory: path.join(base, 'logs'),
      linux: { securityContext: { namespaceOptions: { network: 'NODE' as const } } },
    };
    const { podSandboxId } = await rt.RunPodSandbox({ config });
    const { containerId } = await rt.CreateContainer({
      podSandboxId,
      config: { metadata: { name: 'sleep' }, image: { image: b.image }, command: ['sleep', '3600'], logPath: 'sleep.log' },
      sandboxConfig: config,
    });
    await rt.StartContainer({ containerId });

    const bareExec = (): Promise<void> => floor.exec(floorId, ['true']);
    const execSync = async (): Promise<void> => {
      const r = await rt.ExecSync({ containerId, cmd: ['true'], timeout: '10' });
      if (r.exitCode !== 0) throw new Error(`ExecSync true exited ${r.exitCode}: ${r.stderr.toString()}`);
    };
    const streamedExec = async (): Promise<void> => {
      const { url } = await rt.Exec({ containerId, cmd: ['true'], stdout: true, stderr: true });
      const client = await connectSpdy(url, ['v4.channel.k8s.io']);
      if (isFailure(client)) throw new Error(`streaming exec: HTTP ${client.status} ${client.body}`);
      const r = await execSpdy(client, { stdout: true, stderr: true });
      if (!r.error.includes('Success')) throw new Error(`streaming exec of true failed: ${r.error}`);
    };
    // Round by round, so the floor and berth see the same load on a shared machine.
    const bare: number[] = [];
    const berth: number[] = [];
    const streamed: number[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      const round = [await timed(bareExec), await timed(execSync), await timed(streamedExec)];
      if (i < WARMUP) continue;
      bare.push(round[0]);
      berth.push(round[1]);
      streamed.push(round[2]);
    }
    await floor.delete(floorId);
    out(`exec of \`true\`, ${N} rounds of the three after ${WARMUP} warm-ups:`);
    out(latencyRow('floor  runc exec <id> true', bare));
    out(latencyRow('berthd ExecSync true', berth, bare));
    out(latencyRow('berthd streaming exec true (SPDY v4)', streamed, bare));
  });
}
