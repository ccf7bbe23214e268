// The table of implemented CRI methods. A method missing here answers
// UNIMPLEMENTED. One module per RPC or closely related group of RPCs.
import type { CriContext } from './context';
import { version } from './version';
import { status } from './status';
import { runtimeConfig } from './runtime_config';

// Each handler is typed against its own request/response in its module; the
// table erases that because gRPC dispatches by method name.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (ctx: CriContext, req: any) => Promise<unknown>;

export const HANDLERS: Record<string, Handler | undefined> = {
  Version: version,
  Status: status,
  RuntimeConfig: runtimeConfig,
};
