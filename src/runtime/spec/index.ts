// The container spec builder: CRI config -> OCI runtime spec.
export * from './oci_types';
export * from './builder';
export { probeHost, capabilitiesFromMask, CAPABILITY_NAMES, type HostInfo } from './host_info';
export { toOciResources, clampOomScoreAdj, type Warn } from './resources';
export { DEFAULT_CAPABILITIES } from './security';
export { defaultSeccompProfile } from './seccomp_default';
export { resolveInRootfs, readRootfsFile, resolveUser } from './rootfs_users';
