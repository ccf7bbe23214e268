// Version: runtime name and version, and the CRI API version served.
import { BERTH_VERSION, CRI_API_VERSION, RUNTIME_NAME } from '../version';
import type { VersionRequest__Output } from '../gen/runtime/v1/VersionRequest';
import type { VersionResponse } from '../gen/runtime/v1/VersionResponse';
import type { CriContext } from './context';

export async function version(_ctx: CriContext, _req: VersionRequest__Output): Promise<VersionResponse> {
  return {
    version: '0.1.0',
    runtimeName: RUNTIME_NAME,
    runtimeVersion: BERTH_VERSION,
    runtimeApiVersion: CRI_API_VERSION,
  };
}
