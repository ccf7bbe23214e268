// Capabilities, seccomp and AppArmor for a container, from its CRI security context.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, failedPrecondition, invalidArgument } from '../../errors';
import type { Capability__Output } from '../../gen/runtime/v1/Capability';
import type { LinuxContainerSecurityContext__Output } from '../../gen/runtime/v1/LinuxContainerSecurityContext';
import { CAPABILITY_NAMES, type HostInfo } from './host_info';
import type { OciSeccomp } from './oci_types';
import { defaultSeccompProfile } from './seccomp_default';

/** The capabilities a non-privileged container starts with (Docker's / containerd's set). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN. */
export function normalizeCapability(name: string): string {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!CAPABILITY_NAMES.includes(full)) throw invalidArgument(`unknown capability "${name}"`);
  return full;
}

const isAll = (c: string): boolean => c.trim().toUpperCase() === 'ALL';

/**
 * The container's capability set. "ALL" in add means every capability berth
 * holds; "ALL" in drop means none; individual adds and drops then apply on
 * top, so add [ALL] + drop [CHOWN] is everything but CAP_CHOWN.
 */
export function resolveCapabilities(
  caps: Capability__Output | null | undefined,
  privileged: boolean,
  available: readonly string[],
): string[] {
  if (privileged) return [...available];
  if (caps && caps.addAmbientCapabilities.length > 0) {
    throw invalidArgument('ambient capabilities (add_ambient_capabilities) are not supported by berth');
  }
  let set = new Set(DEFAULT_CAPABILITIES);
  const add = caps?.addCapabilities ?? [];
  const drop = caps?.dropCapabilities ?? [];
  if (add.some(isAll)) set = new Set(available);
  if (drop.some(isAll)) set = new Set();
  for (const c of add.filter((c) => !isAll(c))) {
    const name = normalizeCapability(c);
    if (!available.includes(name)) {
      throw failedPrecondition(`capability ${name} was requested but berth itself does not hold it on this host`);
    }
    set.add(name);
  }
  for (const c of drop.filter((c) => !isAll(c))) set.delete(normalizeCapability(c));
  // Stable order (by bit number) keeps specs comparable.
  return CAPABILITY_NAMES.filter((c) => set.has(c));
}

export type ProfileChoice =
  | { kind: 'unset' }
  | { kind: 'unconfined' }
  | { kind: 'runtimeDefault' }
  | { kind: 'localhost'; ref: string };

function fromSecurityProfile(
  what: string,
  p: NonNullable<LinuxContainerSecurityContext__Output['seccomp']>,
): ProfileChoice {
  if (p.profileType !== 'Localhost' && p.localhostRef) {
    throw invalidArgument(`${what} localhost_ref may only be set when profile_type is Localhost`);
  }
  switch (p.profileType) {
    case 'Unconfined':
      return { kind: 'unconfined' };
    case 'RuntimeDefault':
      return { kind: 'runtimeDefault' };
    case 'Localhost':
      if (!p.localhostRef) throw invalidArgument(`${what} profile_type Localhost needs a localhost_ref`);
      return { kind: 'localhost', ref: p.localhostRef.replace(/^localhost\//, '') };
    default:
      throw invalidArgument(`${what} profile_type "${String(p.profileType)}" is unknown`);
  }
}

/** The deprecated string forms: "runtime/default", "docker/default", "unconfined", "localhost/<ref>". */
function fromProfileString(what: string, s: string): ProfileChoice {
  if (s === '') return { kind: 'unset' };
  if (s === 'runtime/default' || s === 'docker/default') return { kind: 'runtimeDefault' };
  if (s === 'unconfined') return { kind: 'unconfined' };
  if (s.startsWith('localhost/') && s.length > 'localhost/'.length) return { kind: 'localhost', ref: s.slice('localhost/'.length) };
  throw invalidArgument(`${what} profile "${s}" is invalid: use runtime/default, unconfined or localhost/<profile>`);
}

export function seccompChoice(sc: LinuxContainerSecurityContext__Output | null | undefined): ProfileChoice {
  if (sc?.seccomp) return fromSecurityProfile('seccomp', sc.seccomp);
  return fromProfileString('seccomp', sc?.seccompProfilePath ?? '');
}

export function apparmorChoice(sc: LinuxContainerSecurityContext__Output | null | undefined): ProfileChoice {
  if (sc?.apparmor) return fromSecurityProfile('apparmor', sc.apparmor);
  return fromProfileString('apparmor', sc?.apparmorProfile ?? '');
}

const SECCOMP_ACTIONS = new Set([
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
]);

/** Reads a Localhost seccomp profile (OCI LinuxSeccomp JSON) from the host. */
export function loadSeccompProfile(file: string): OciSeccomp {
  if (!path.isAbsolute(file)) throw invalidArgument(`seccomp localhost profile "${file}" must be an absolute path`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw invalidArgument(`seccomp localhost profile "${file}" does not exist`, err);
    throw invalidArgument(`cannot read seccomp localhost profile "${file}": ${errorMessage(err)}`, err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`seccomp localhost profile "${file}" is not valid JSON: ${errorMessage(err)}`, err);
  }
  const p = parsed as Partial<OciSeccomp> | null;
  if (typeof p !== 'object' || p === null || typeof p.defaultAction !== 'string' || !SECCOMP_ACTIONS.has(p.defaultAction)) {
    throw invalidArgument(`seccomp localhost profile "${file}" has no valid defaultAction`);
  }
  if (p.syscalls !== undefined && !Array.isArray(p.syscalls)) {
    throw invalidArgument(`seccomp localhost profile "${file}": syscalls must be a list`);
  }
  return p as OciSeccomp;
}

/** The seccomp filter, or undefined for none (unconfined, unset, privileged). */
export function resolveSeccomp(choice: ProfileChoice, privileged: boolean, boundingCaps: readonly string[]): OciSeccomp | undefined {
  if (privileged) return undefined;
  switch (choice.kind) {
    case 'runtimeDefault':
      return defaultSeccompProfile(boundingCaps);
    case 'localhost':
      return loadSeccompProfile(choice.ref);
    default:
      return undefined;
  }
}

/**
 * The AppArmor profile name, or undefined for none. A named profile on a host
 * without AppArmor is an error: running the container unconfined instead would
 * silently drop a protection the user asked for.
 */
export function resolveApparmor(
  choice: ProfileChoice,
  privileged: boolean,
  host: Pick<HostInfo, 'apparmorEnabled' | 'apparmorDefaultProfile'>,
): string | undefined {
  if (choice.kind === 'localhost') {
    if (!host.apparmorEnabled) {
      throw failedPrecondition(
        `AppArmor profile "${choice.ref}" was requested but AppArmor is not enabled on this host`,
      );
    }
    return choice.ref;
  }
  if (choice.kind === 'runtimeDefault' && !privileged && host.apparmorEnabled) return host.apparmorDefaultProfile;
  return undefined;
}
