// CheckpointContainer through CRIU (runc checkpoint --leave-running), the
// result a tar archive at the requested location. Whether CRIU works on this
// node is asked of `criu check` first: a CRIU too old for the kernel fails
// there (Debian 12's CRIU 3.17 on a 6.x kernel cannot read the vDSO), and the
// caller is told so with FAILED_PRECONDITION rather than a half-written archive.
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { errnoCode, errorMessage, failedPrecondition, invalidArgument, wrapError } from '../errors';
import type { ContainerDeps } from './deps';
import type { ExitMonitor } from './monitor';
import { isRunning, stateWord } from './state';

export interface CriuVerdict {
  ok: boolean;
  /** Why CRIU cannot be used ("" when ok). */
  reason: string;
}

interface RunResult {
  code: number | null;
  output: string;
}

function runCommand(binary: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    // criu check prints a handful of lines; keep the tail only, bounded.
    const take = (c: Buffer): void => {
      output = (output + c.toString('utf8')).slice(-8192);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** Runs `criu check` once per `ttlMs` (the kernel does not change, an installed CRIU may). */
export class CriuProbe {
  private cached?: { at: number; verdict: CriuVerdict };

  constructor(
    private readonly binary = 'criu',
    private readonly ttlMs = 5 * 60_000,
  ) {}

  async check(): Promise<CriuVerdict> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.verdict;
    const verdict = await this.probe();
    this.cached = { at: Date.now(), verdict };
    return verdict;
  }

  private async probe(): Promise<CriuVerdict> {
    try {
      const { code, output } = await runCommand(this.binary, ['check']);
      if (code === 0) return { ok: true, reason: '' };
      const errors = output.split('\n').filter((l) => l.includes('Error')).slice(0, 3);
      const detail = (errors.length > 0 ? errors : output.trim().split('\n').slice(-2)).join('; ');
      return { ok: false, reason: `"${this.binary} check" failed on this kernel (${os.release()}): ${detail}` };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { ok: false, reason: `CRIU is not installed (${this.binary} not found)` };
      return { ok: false, reason: `cannot run "${this.binary} check": ${errorMessage(err)}` };
    }
  }
}

/**
 * Checkpoints a running container into `location` (a tar archive: the CRIU
 * images under checkpoint/ and the OCI spec as config.dump), leaving it running.
 */
export async function checkpointContainer(
  deps: ContainerDeps,
  monitor: ExitMonitor,
  criu: CriuProbe,
  idOrPrefix: string,
  location: string,
): Promise<void> {
  if (!location) throw invalidArgument('CheckpointContainer: location is required');
  if (!path.isAbsolute(location)) throw invalidArgument(`CheckpointContainer: location "${location}" must be an absolute path`);
  const rec = deps.store.require(idOrPrefix);
  await deps.lock.run(rec.id, async () => {
    await monitor.refresh(rec);
    if (!isRunning(rec)) {
      throw failedPrecondition(`container ${rec.id} is ${stateWord(rec)}, not running; it cannot be checkpointed`);
    }
    const verdict = await criu.check();
    if (!verdict.ok) throw failedPrecondition(`CheckpointContainer: CRIU cannot checkpoint on this node: ${verdict.reason}`);
    const work = await fsp.mkdtemp(path.join(deps.config.state, 'checkpoint-'));
    try {
      const images = path.join(work, 'checkpoint');
      await fsp.mkdir(images, { mode: 0o700 });
      await deps.runtime.checkpoint(rec, images, path.join(work, 'work'));
      await fsp.copyFile(path.join(rec.bundleDir, 'config.json'), path.join(work, 'config.dump'));
      await fsp.mkdir(path.dirname(location), { recursive: true });
      const tar = await runCommand('tar', ['-cf', location, '-C', work, 'checkpoint', 'config.dump']);
      if (tar.code !== 0) throw new Error(`tar: ${tar.output.trim()}`);
    } catch (err) {
      throw wrapError(`CheckpointContainer ${rec.id}`, err);
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  });
}
