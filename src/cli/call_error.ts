// What `berth` prints when a CRI call fails: one line an operator can act on,
// not gRPC's "14 UNAVAILABLE: ... Resolution note:" text.
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../errors';

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'details' in err;
}

/** `err` from a call to berthd at `socket`, as one line. */
export function callErrorLine(err: unknown, socket: string): string {
  if (!isServiceError(err)) return errorMessage(err).split('\n')[0];
  if (err.code === grpc.status.UNAVAILABLE) {
    // grpc-js: "No connection established. Last error: Protocol error (<time>). Resolution note: ".
    const last = /Last error: (.*?)(?: \(\d{4}-[^)]*\))?\./.exec(err.details)?.[1];
    return `${socket} does not answer as berthd does (${(last ?? err.details).trim() || 'unavailable'}); is it berthd's CRI socket?`;
  }
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return `berthd at ${socket} did not answer in time`;
  const what = grpc.status[err.code]?.toLowerCase().replaceAll('_', ' ') ?? `status ${err.code}`;
  return err.details ? err.details.split('\n')[0] : what;
}
