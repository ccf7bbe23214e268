// The one façade over a container's runtime: it spawns and reconnects the
// per-container shims and makes every OCI-runtime call (create through the
// shim, start, kill, delete, exec, update, state). Container code and the
// handler probe go through it; nothing else constructs an OciRuntime or a
// ShimClient. Callers name a container by id, runtime handler and shim
// directory (a container record carries all three).
import { BerthError } from '../errors';
import { OciRuntime, type ExecOptions, type ExecResult, type OciState } from './oci_runtime';
import { ShimClient, stopLeftoverShim, type ShimAttach, type ShimAttachOptions, type ShimExit, type ShimSpawnOptions } from './shim_client';
import { CgroupAttachWarmer } from './cgroup_attach_warmer';
import { SupervisorPool, type SupervisedExec } from './exec_supervisor';
import { runsFromSealedCopy } from './sealed_copy';
import { ShimSpares } from './shim_spare';
import type { OciLinuxResources, OciProcess, OciSpec } from './spec/oci_types';

/** An OCI runtime binary and its --root: what a runtime handler resolves to. */
export interface RuntimeTarget {
  name: string;
  binary: string;
  root: string;
  /** Scratch files of runtime calls (`<state>/tmp`). */
  tmpDir: string;
  /** Global flags every runtime call takes, before the command (runc --systemd-cgroup). */
  globalArgs?: string[];
  /** `binary --version` output, when known: runc 1.0/1.1 containers are started by their shim. */
  version?: string;
}

/**
 * runc 1.0 and 1.1 start a created container when its exec fifo is opened for
 * reading, which the shim does itself (START) instead of a `runc start`
 * process. runc 1.2 moved the poststart hooks into `runc start`, so it, and
 * any other runtime, gets `<runtime> start`.
 */
export function startsThroughShim(target: Pick<RuntimeTarget, 'version'>): boolean {
  return /^runc version 1\.[01]\./.test(target.version ?? '');
}

/** How the façade names a container. */
export interface ContainerRef {
  id: string;
  runtimeHandler: string;
  shimDir: string;
}

export type ShimOptions = Omit<ShimSpawnOptions, 'id' | 'stateDir' | 'runtime' | 'runtimeRoot' | 'spares'>;

export interface ShimReleaseOptions {
  /** How long to wait for the shim to leave by itself once its container is deleted. */
  exitWaitMs: number;
  graceMs: number;
  waitMs: number;
  /** How a shim that stays is ended (default SIGKILL to the shim). */
  kill?: (pid: number) => Promise<void> | void;
}

export type { ExecResult, OciState, ShimAttach, ShimAttachOptions, ShimExit, SupervisedExec };

export class ContainerRuntime {
  private readonly shims = new Map<string, ShimClient>();
  private readonly supervisors = new SupervisorPool();
  private readonly attachWarmer = new CgroupAttachWarmer();
  /** Only berthd's own runtime keeps a spare shim waiting (a probe's would wait for nothing). */
  private readonly spares?: ShimSpares;

  constructor(
    private readonly resolve: (handlerName: string) => RuntimeTarget,
    opts: { spareShims?: boolean } = {},
  ) {
    if (opts.spareShims) this.spares = new ShimSpares();
  }

  private oci(c: ContainerRef): OciRuntime {
    return new OciRuntime(this.resolve(c.runtimeHandler), this.supervisors);
  }

  /** Writes `<dir>/config.json` atomically. */
  writeBundle(dir: string, spec: OciSpec): Promise<string> {
    return OciRuntime.writeBundle(dir, spec);
  }

  /**
   * Keeps the kernel's cgroup attach lock warm (cgroup_attach_warmer.ts) until
   * the returned function is called: held from the start of a create, so
   * `runtime create` does not wait out an RCU grace period.
   */
  warmCgroupAttach(): () => void {
    return this.attachWarmer.hold();
  }

  /** Spawns the container's shim, which runs `runtime create`; returns the container's init pid. */
  async create(c: ContainerRef, opts: ShimOptions): Promise<number> {
    const target = this.resolve(c.runtimeHandler);
    const shim = await ShimClient.spawn({
      ...opts,
      id: c.id,
      stateDir: c.shimDir,
      runtime: target.binary,
      sealedCopy: runsFromSealedCopy(target),
      runtimeRoot: target.root,
      runtimeArgs: target.globalArgs ?? [],
      spares: this.spares,
    });
    this.shims.set(c.id, shim);
    return shim.containerPid;
  }

  async start(c: ContainerRef): Promise<void> {
    if (startsThroughShim(this.resolve(c.runtimeHandler))) {
      try {
        await (await this.shim(c)).start();
        return;
      } catch (err) {
        // Only a shim that predates START (an upgrade with containers created
        // by the old one) falls back; any other failure is the start's own.
        if (!(err instanceof BerthError && err.kind === 'INVALID_ARGUMENT')) throw err;
      }
    }
    return this.oci(c).start(c.id);
  }

  kill(c: ContainerRef, signal: string, all = false): Promise<void> {
    return this.oci(c).kill(c.id, signal, all);
  }

  delete(c: ContainerRef, force = false): Promise<void> {
    return this.oci(c).delete(c.id, force);
  }

  state(c: ContainerRef): Promise<OciState> {
    return this.oci(c).state(c.id);
  }

  update(c: ContainerRef, resources: OciLinuxResources): Promise<void> {
    return this.oci(c).update(c.id, resources);
  }

  checkpoint(c: ContainerRef, imageDir: string, workDir: string): Promise<void> {
    return this.oci(c).checkpoint(c.id, imageDir, workDir);
  }

  exec(c: ContainerRef, process: OciProcess, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.oci(c).exec(c.id, process, opts);
  }

  startExec(c: ContainerRef, process: OciProcess, opts: { tty: boolean; stdin: boolean }): Promise<SupervisedExec> {
    return this.oci(c).startExec(c.id, process, opts);
  }

  // ---- the shim -------------------------------------------------------------

  /** The container's shim, reconnected after a berthd restart; rejects when it is gone. */
  private async shim(c: ContainerRef): Promise<ShimClient> {
    let shim = this.shims.get(c.id);
    if (!shim) {
      shim = await ShimClient.connect(c.shimDir);
      this.shims.set(c.id, shim);
    }
    return shim;
  }

  /** Whether the shim answers (a dead or unreachable shim is false). */
  async shimAlive(c: ContainerRef): Promise<boolean> {
    try {
      return await (await this.shim(c)).isAlive();
    } catch {
      return false;
    }
  }

  /** Resolves with the exit the shim records; rejects when the shim goes away without one. */
  async waitExit(c: ContainerRef): Promise<ShimExit> {
    return (await this.shim(c)).waitExit();
  }

  /** The exit the shim recorded, or null (still running, or no shim). */
  async readExit(c: ContainerRef): Promise<ShimExit | null> {
    let shim: ShimClient;
    try {
      shim = await this.shim(c);
    } catch {
      return null;
    }
    return shim.readExitFile();
  }

  async reopenLog(c: ContainerRef): Promise<void> {
    await (await this.shim(c)).reopenLog();
  }

  async attach(c: ContainerRef, opts: ShimAttachOptions): Promise<ShimAttach> {
    return (await this.shim(c)).attach(opts);
  }

  /**
   * After `delete`: waits for the shim to leave by itself (it records the exit
   * and exits once its container is gone; its closing our connection is the
   * event, no polling), then ends one that stays.
   */
  async releaseShim(c: ContainerRef, opts: ShimReleaseOptions): Promise<void> {
    const shim = await this.shim(c).catch(() => undefined);
    if (shim) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([shim.waitLeft(), new Promise((r) => (timer = setTimeout(r, opts.exitWaitMs)))]);
      clearTimeout(timer);
    }
    this.shims.delete(c.id);
    await stopLeftoverShim(c.shimDir, opts);
  }

  /** Stops following shims (berthd shutdown); the containers keep running. Waiting exec supervisors and spare shims leave. */
  close(): void {
    this.shims.clear();
    this.supervisors.close();
    this.spares?.close();
  }
}

