// ExecSync: runs a command in a running container and returns its output
// (stdout and stderr apart, each capped) and exit code.
import type { ExecSyncRequest__Output } from '../gen/runtime/v1/ExecSyncRequest';
import type { ExecSyncResponse } from '../gen/runtime/v1/ExecSyncResponse';
import { invalidArgument } from '../errors';
import type { CriContext } from './context';

export async function execSync(ctx: CriContext, req: ExecSyncRequest__Output): Promise<ExecSyncResponse> {
  const containers = ctx.containers;
  if (!req.containerId) throw invalidArgument('container_id is required');
  if (!req.cmd?.length) throw invalidArgument('cmd is required');
  const timeout = Number(req.timeout);
  if (!Number.isFinite(timeout) || timeout < 0) throw invalidArgument(`timeout must be >= 0 seconds, got ${req.timeout}`);
  const r = await containers.execSync(req.containerId, req.cmd, timeout);
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
}
