// RuntimeConfig: tells the kubelet which cgroup driver berth uses, so the two
// agree (kubelet's --cgroup-driver is then taken from here).
import type { RuntimeConfigRequest__Output } from '../gen/runtime/v1/RuntimeConfigRequest';
import type { RuntimeConfigResponse } from '../gen/runtime/v1/RuntimeConfigResponse';
import type { CriContext } from './context';

export async function runtimeConfig(ctx: CriContext, _req: RuntimeConfigRequest__Output): Promise<RuntimeConfigResponse> {
  return { linux: { cgroupDriver: ctx.config.runtime.cgroup_driver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' } };
}
