// The CniManager of a context. The daemon passes one in `ctx.network`; a
// context built without it (older wiring, tests) gets one made from its config,
// kept per context so the pod CIDR set by UpdateRuntimeConfig is not lost.
import { CniManager } from '../network/cni';
import type { CriContext } from './context';

const fallback = new WeakMap<CriContext, CniManager>();

export function networkOf(ctx: CriContext): CniManager {
  if (ctx.network) return ctx.network;
  let mgr = fallback.get(ctx);
  if (!mgr) {
    mgr = CniManager.fromConfig(ctx.config, ctx.logger);
    fallback.set(ctx, mgr);
  }
  return mgr;
}
