// RunPodSandbox: the steps that make a pod (record, directories, cgroup,
// pinned namespaces, pod files, network) and the rollback of all of them
// when one fails. The request reaches here already checked.
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { alreadyExists, errorMessage, failedPrecondition, invalidArgument, wrapError } from '../errors';
import type { RuntimeHandler } from '../runtime/handlers';
import { crashPoint } from '../util/crashpoint';
import type { KeyedMutex } from '../util/keyed_mutex';
import { settleAll } from '../util/settle';
import type { PhaseTrace } from '../metrics/phase_trace';
import { makeDirs } from '../util/dirs';
import { podNetworkSpec } from './cni_adapter';
import { newPodRecord, type PodSpec } from './pod_record';
import type { PodsMountPropagation } from './namespaces/propagation';
import type { PinRequest, PinResult } from './namespaces/pinner';
import type { SandboxParts } from './parts';
import { defaultsForPod } from './network_sysctls';
import { hostResolvConf, hostsFor, podFilesOutliveReboot, writeNewPodFiles } from './pod_files';
import { sandboxNameKey, type SandboxRecord } from './record';
import { markReady } from './state';
import type { PodTeardown } from './teardown';

/** RunPodSandbox's input, defined beside the record it becomes. */
export type { PodSpec } from './pod_record';

export interface PodCreatorOptions {
  /** Serialises run/stop/remove of one pod. */
  locks: KeyedMutex;
  propagation: PodsMountPropagation;
  teardown: PodTeardown;
  /** Resolves runtime_handler names (RuntimeHandlerRegistry). */
  handlers: { get(name: string): RuntimeHandler };
  shmSizeBytes: number;
  /** Sysctls every pod with its own network namespace gets unless it sets them itself (containerd 2.x's unprivileged ports and ICMP). */
  podNetworkSysctls: Record<string, string>;
}

/** A step of RunPodSandbox that failed, named for the error message. */
class StepFailed {
  constructor(
    readonly step: string,
    readonly cause: unknown,
  ) {}
}

/** Runs one step, its failure tagged with the step's name (see together() in PodCreator.run). */
async function inStep<T>(step: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StepFailed(step, err);
  }
}

/** A pod in a user namespace needs a handler whose start-up probe ran one (and, with the host network, that too). */
export function checkUsernsSupport(handler: RuntimeHandler, hostNetwork: boolean): void {
  const u = handler.userNamespaces;
  if (!u?.ok) {
    throw failedPrecondition(`runtime handler "${handler.name}" cannot run pods in user namespaces on this host: ${u?.problem ?? 'not probed'}`);
  }
  if (hostNetwork && !u.hostNetwork) {
    throw invalidArgument(
      `runtime handler "${handler.name}" cannot run a pod in a user namespace on the host network on this host: ${u.hostNetworkProblem}`,
    );
  }
}

export class PodCreator {
  constructor(
    private readonly d: SandboxParts,
    private readonly o: PodCreatorOptions,
  ) {}

  /** Creates the pod and returns its id; on failure everything made is undone and the name is free again. */
  async run(spec: PodSpec, trace: PhaseTrace): Promise<string> {
    const handler = this.o.handlers.get(spec.runtimeHandler);
    if (spec.userns) checkUsernsSupport(handler, spec.namespaceModes.network === 'NODE');
    const key = sandboxNameKey(spec.metadata);
    const id = randomBytes(32).toString('hex');
    const existing = this.d.store.reserveName(key, id);
    if (existing) {
      throw alreadyExists(
        `pod sandbox name "${key}" is already reserved by pod ${existing}; stop and remove it first, or use another attempt number`,
      );
    }
    return this.o.locks.run(id, async () => {
      let rec: SandboxRecord;
      try {
        const cgroupExisted = await this.d.cgroups.exists({ path: spec.cgroupPath, slice: spec.cgroupSlice });
        rec = newPodRecord(this.d, id, spec, handler.name, cgroupExisted);
      } catch (err) {
        this.d.store.releaseName(key, id);
        throw err;
      }
      let step = 'write the sandbox record';
      /**
       * Runs independent chains of steps side by side. Every chain has settled
       * before the first failure (in the order given) is thrown, named by its
       * step, and rolled back: nothing is still being made while it is undone.
       */
      const together = async (chains: Array<Promise<unknown> | undefined>): Promise<void> => {
        try {
          await settleAll(chains.map((c) => c ?? Promise.resolve()));
        } catch (reason) {
          if (reason instanceof StepFailed) {
            step = reason.step;
            throw reason.cause;
          }
          throw reason;
        }
      };
      try {
        await trace.time('record', () => this.d.store.create(rec));
        crashPoint('pod-run:after-record');
        const logDir = spec.config.logDirectory;
        // berth-pinns makes the pod's state directories itself: pinning waits
        // for nothing but, with a berth-pause, the cgroup it is born in. The
        // pod files, the log directory and the network's preparation (CNI ADD
        // once the netns is pinned) go on beside it.
        const pause = spec.namespaceModes.pid === 'POD';
        let pinned: PinResult = { nsPaths: {} };
        const pin = async (): Promise<void> => {
          await inStep('pin the pod namespaces', async () => {
            await this.o.propagation.ensurePrivate();
            pinned = await trace.time('pin', () => this.d.pinner.pin(this.pinRequest(rec, spec)));
          });
          crashPoint('pod-run:after-pin');
        };
        // Without a berth-pause the helper is asked for first, and the cgroup
        // (synchronous with cgroupfs) made while it runs: the request goes out
        // within this turn's microtasks, the cgroup at the next turn.
        const pinFirst = pause ? undefined : pin();
        const cgroup = inStep(`create the pod cgroup ${rec.cgroup.path}`, async () => {
          if (pinFirst) await new Promise((r) => setImmediate(r));
          await trace.time('cgroup', () => this.d.cgroups.create(rec.cgroup));
          crashPoint('pod-run:after-cgroup');
        });
        const pinning = pinFirst ?? cgroup.then(pin);
        // A pod network's hosts file names the pod's IP, so it waits for CNI ADD.
        const podFiles = [
          { file: rec.hostnameFile, data: rec.hostname + '\n' },
          { file: rec.resolvConfFile, data: spec.resolvConf ?? hostResolvConf() },
          ...(rec.networkAttached ? [] : [{ file: rec.hostsFile, data: hostsFor(rec.hostname, []) }]),
        ];
        const durable = podFilesOutliveReboot(rec);
        let ips: string[] = [];
        await together([
          cgroup,
          pinning,
          inStep('write the pod files', () => trace.time('pod_files', async () => {
            await makeDirs(rec.filesDir, 0o755);
            await writeNewPodFiles(podFiles, durable);
          })),
          logDir ? inStep(`create the log directory ${logDir}`, () => trace.time('log_dir', () => makeDirs(logDir, 0o755))) : undefined,
          rec.networkAttached
            ? inStep('set up the pod network', async () => {
                ({ ips } = await this.attachNetwork(rec, pinning, trace));
              })
            : undefined,
        ]);
        if (pinned.pausePid) {
          step = 'place berth-pause in the pod cgroup';
          const pausePid = pinned.pausePid;
          await trace.time('pause_cgroup', () => this.d.cgroups.adoptPause(rec.cgroup, id, pausePid));
        }

        let network = rec.network;
        if (rec.networkAttached) {
          network = { ip: ips[0] ?? '', additionalIps: ips.slice(1) };
          step = 'write the pod files';
          await trace.time('hosts_file', () => writeNewPodFiles([{ file: rec.hostsFile, data: hostsFor(rec.hostname, ips.slice(0, 1)) }], durable));
          crashPoint('pod-run:after-network');
        }
        step = 'write the sandbox record';
        // The results of the steps go into the record with the state change: one write.
        await trace.time('record_ready', () => this.d.store.update(id, (r) => {
          r.nsPaths = pinned.nsPaths;
          r.pausePid = pinned.pausePid;
          r.network = network;
          markReady(r);
        }));
        this.d.logger.info('pod sandbox ready', { id, name: key, handler: handler.name, ip: rec.network.ip });
        return id;
      } catch (err) {
        throw await this.rollBack(rec, wrapError(`RunPodSandbox ${key}: cannot ${step}`, err));
      }
    });
  }

  /** What berth-pinns makes: the pod's namespaces (and berth-pause for a pod PID namespace, born in the pod cgroup), its shm. */
  private pinRequest(rec: SandboxRecord, spec: PodSpec): PinRequest {
    const podNetwork = spec.namespaceModes.network === 'POD';
    const pause = spec.namespaceModes.pid === 'POD';
    return {
      nsDir: path.join(rec.stateDir, 'ns'),
      net: podNetwork,
      ipc: spec.namespaceModes.ipc === 'POD',
      uts: podNetwork,
      pid: pause,
      userns: spec.userns,
      hostname: spec.hostname,
      sysctls: podNetwork ? { ...defaultsForPod(this.o.podNetworkSysctls, spec.userns), ...spec.sysctls } : spec.sysctls,
      cgroupProcs: pause ? this.d.cgroups.procsFiles(rec.cgroup) : [],
      shm: rec.shmPath ? { path: rec.shmPath, sizeBytes: this.o.shmSizeBytes } : undefined,
    };
  }

  /**
   * CNI ADD of a pod network, started beside pinning: the netns path is known
   * before it exists, and the network touches it only once `pinning` is done.
   * A failure of pinning is pinning's to report. The phase is timed from then.
   */
  private async attachNetwork(rec: SandboxRecord, pinning: Promise<void>, trace: PhaseTrace): Promise<{ ips: string[] }> {
    const netnsPinned = pinning.then(() => undefined);
    const adding = this.d.network.setupPodNetwork(podNetworkSpec(rec), netnsPinned);
    adding.catch(() => undefined); // awaited below, once pinning has settled
    await netnsPinned.catch(() => undefined);
    return trace.time('cni_add', () => adding);
  }

  /** Undoes a failed creation and frees its name; returns the failure to throw. */
  private async rollBack(rec: SandboxRecord, failure: Error): Promise<Error> {
    const key = sandboxNameKey(rec.metadata);
    this.d.logger.warn('pod sandbox creation failed; rolling back', { id: rec.id, name: key, error: failure.message });
    try {
      await this.o.teardown.undoAll(rec);
      await this.d.store.delete(rec.id);
    } catch (undoErr) {
      // The record stays ('creating', hidden from List) so the next start retries the rollback.
      this.d.logger.error('rollback of a failed pod sandbox incomplete', { id: rec.id, error: errorMessage(undoErr) });
    } finally {
      // The kubelet retries with the same name: it must not meet a pod it never saw.
      this.d.store.releaseName(key, rec.id);
    }
    return failure;
  }
}
