// ExecSync and the exec target of streaming exec: the container's own process
// settings (user, env, capabilities...) with the command swapped in.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition } from '../errors';
import { Limits, truncationMarker } from '../limits';
import type { ExecResult } from '../runtime/container_runtime';
import { execProcess } from '../runtime/spec/builder';
import type { OciProcess } from '../runtime/spec/oci_types';
import type { SupervisedExec } from '../runtime/exec_supervisor';
import type { ContainerDeps } from './deps';
import type { ContainerRecord } from './record';
import type { ExitMonitor } from './monitor';
import { isRunning, stateWord } from './state';

/** A running container's exec: its id and how to start `cmd` in it. */
export interface ExecTarget {
  id: string;
  start(opts: { tty: boolean; stdin: boolean }): Promise<SupervisedExec>;
}

export class ContainerExec {
  /**
   * Each container's OCI process, read from its bundle once: it does not
   * change after create. Keyed by the record object, which the store keeps
   * for the container's life, so a removed container's entry goes with it.
   */
  private readonly processes = new WeakMap<ContainerRecord, OciProcess>();

  constructor(
    private readonly deps: ContainerDeps,
    private readonly monitor: ExitMonitor,
  ) {}

  /**
   * Runs `cmd` and returns its output, each stream cut at
   * Limits.execSyncStreamBytes with a marker appended: both streams travel in
   * one reply, which must stay under the 16 MiB gRPC message limit of berthd
   * and the kubelet, so a chatty command gets its output cut, never an error.
   */
  async execSync(idOrPrefix: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    const { rec, process } = await this.prepare(idOrPrefix, cmd, false);
    const cap = Limits.execSyncStreamBytes;
    const r = await this.deps.runtime.exec(rec, process, {
      timeoutMs: timeoutSeconds > 0 ? timeoutSeconds * 1000 : undefined,
      stdoutCap: cap,
      stderrCap: cap,
    });
    const mark = (out: Buffer, cut: boolean): Buffer => (cut ? Buffer.concat([out, truncationMarker(cap)]) : out);
    return { ...r, stdout: mark(r.stdout, r.stdoutTruncated), stderr: mark(r.stderr, r.stderrTruncated) };
  }

  async target(idOrPrefix: string, cmd: string[], tty: boolean): Promise<ExecTarget> {
    const { rec, process } = await this.prepare(idOrPrefix, cmd, tty);
    return { id: rec.id, start: (opts) => this.deps.runtime.startExec(rec, process, opts) };
  }

  private async prepare(idOrPrefix: string, cmd: string[], tty: boolean) {
    const rec = this.deps.store.require(idOrPrefix);
    await this.monitor.refresh(rec);
    if (!isRunning(rec)) {
      throw failedPrecondition(`container ${rec.id} is ${stateWord(rec)}, not running; cannot exec in it`);
    }
    return { rec, process: execProcess(await this.containerProcess(rec), cmd, tty) };
  }

  private async containerProcess(rec: ContainerRecord): Promise<OciProcess> {
    let p = this.processes.get(rec);
    if (!p) {
      const spec = JSON.parse(await fs.promises.readFile(path.join(rec.bundleDir, 'config.json'), 'utf8')) as { process: OciProcess };
      p = spec.process;
      this.processes.set(rec, p);
    }
    return p;
  }
}
