// Exec: validates the request and returns a single-use streaming URL; the
// command runs when the client opens it (src/streaming/server.ts).
import { invalidArgument } from '../errors';
import type { ExecRequest__Output } from '../gen/runtime/v1/ExecRequest';
import type { ExecResponse } from '../gen/runtime/v1/ExecResponse';
import type { CriContext } from './context';
import { requireRunning, validateStreams } from './attach';

export async function exec(ctx: CriContext, req: ExecRequest__Output): Promise<ExecResponse> {
  if (!req.containerId) throw invalidArgument('Exec: container_id is required');
  if (req.cmd.length === 0 || req.cmd[0] === '') throw invalidArgument('Exec: cmd must name a command to run');
  validateStreams('Exec', req);
  const streaming = ctx.streaming;
  await requireRunning(ctx, 'Exec', req.containerId);
  return { url: streaming.getExecUrl(req) };
}
