// A service that failed to initialise (e.g. no overlayfs) leaves its RPCs
// answering FAILED_PRECONDITION with the reason, instead of crashing berthd.
import { failedPrecondition } from '../errors';

export function requireService<T>(svc: T | undefined, method: string): T {
  if (svc === undefined) throw failedPrecondition(`${method}: this part of berthd is not available; see berthd's log at start`);
  return svc;
}
