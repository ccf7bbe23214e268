// Attach: validates the request and returns a single-use streaming URL that
// connects the client to the container's main process.
import { failedPrecondition, invalidArgument } from '../errors';
import type { AttachRequest__Output } from '../gen/runtime/v1/AttachRequest';
import type { AttachResponse } from '../gen/runtime/v1/AttachResponse';
import type { CriContext } from './context';

/** The kubelet's rules for exec and attach streams. */
export function validateStreams(
  method: string,
  req: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
): void {
  // With a terminal there is one output stream; stderr cannot be told apart.
  if (req.tty && req.stderr) throw invalidArgument(`${method}: tty and stderr cannot both be true`);
  if (!req.stdin && !req.stdout && !req.stderr)
    throw invalidArgument(`${method}: one of stdin, stdout, or stderr must be set`);
}

export async function attach(ctx: CriContext, req: AttachRequest__Output): Promise<AttachResponse> {
  if (!req.containerId) throw invalidArgument('Attach: container_id is required');
  validateStreams('Attach', req);
  const streaming = ctx.streaming;
  await requireRunning(ctx, 'Attach', req.containerId);
  return { url: streaming.getAttachUrl(req) };
}

/** As containerd: a URL is only handed out for a container that exists and runs. */
export async function requireRunning(ctx: CriContext, method: string, containerId: string): Promise<void> {
  const rec = await ctx.containers.status(containerId);
  if (rec.state !== 'CONTAINER_RUNNING') {
    throw failedPrecondition(`${method}: container ${rec.id} is not running`);
  }
}
