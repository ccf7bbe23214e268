// Mounts of a container: the runtime's defaults (/proc, /dev, /sys, ...), the
// pod's files (hosts, resolv.conf, hostname, /dev/shm) and the CRI mounts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, failedPrecondition, invalidArgument } from '../../errors';
import type { Mount__Output } from '../../gen/runtime/v1/Mount';
import { mountOf, readMountInfoSync, type MountInfoEntry } from '../../util/mountinfo';
import type { OciMount } from './oci_types';

/**
 * /sys: a new sysfs, which the kernel allows only to the owner of the
 * network namespace; a container in a user namespace on the host network is
 * not that, so it gets the host's /sys bound instead (what runc ≥ 1.2 does
 * by itself, and runc 1.1 does not).
 */
export function sysMount(ownsNetwork: boolean, privileged: boolean): OciMount {
  const sysMode = privileged ? 'rw' : 'ro';
  if (!ownsNetwork) return { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', sysMode] };
  return { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysMode] };
}

/** The mounts every container gets before CRI mounts override some of them. */
export function defaultMounts(privileged: boolean, ownsNetwork = true): OciMount[] {
  const sysMode = privileged ? 'rw' : 'ro';
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    sysMount(ownsNetwork, privileged),
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysMode] },
  ];
}

export interface PodFiles {
  hostnamePath?: string;
  hostsPath?: string;
  resolvConfPath?: string;
  shmPath?: string;
}

export interface MountOptions {
  privileged: boolean;
  readonlyRootfs: boolean;
  pod: PodFiles;
  /** Whether the OCI runtime understands "rro" (recursive read-only). */
  recursiveReadOnlySupported: boolean;
  /** The container cannot mount a sysfs of its own (user namespace on the host network). */
  hostSysfs?: boolean;
  /** The host mount table, for propagation checks (injectable for tests). */
  mountInfo?: () => MountInfoEntry[];
}

export interface MountsResult {
  mounts: OciMount[];
  rootfsPropagation?: string;
}

interface WantedMount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  recursiveReadOnly: boolean;
  propagation: Mount__Output['propagation'];
  idmap?: Pick<OciMount, 'uidMappings' | 'gidMappings'>;
}

function podMounts(opts: MountOptions): WantedMount[] {
  const out: WantedMount[] = [];
  const file = (containerPath: string, hostPath: string | undefined, readonly: boolean): void => {
    if (hostPath) {
      out.push({ containerPath, hostPath, readonly, recursiveReadOnly: false, propagation: 'PROPAGATION_PRIVATE' });
    }
  };
  // The pod's files are read-only exactly when the rootfs is (as containerd does).
  file('/etc/hostname', opts.pod.hostnamePath, opts.readonlyRootfs);
  file('/etc/hosts', opts.pod.hostsPath, opts.readonlyRootfs);
  file('/etc/resolv.conf', opts.pod.resolvConfPath, opts.readonlyRootfs);
  file('/dev/shm', opts.pod.shmPath, false);
  return out;
}

/** Builds the container's mount list and the rootfs propagation it needs. */
export function buildMounts(criMounts: readonly Mount__Output[], opts: MountOptions): MountsResult {
  const wanted: WantedMount[] = [];
  for (const m of criMounts) {
    if (!m.containerPath || !path.isAbsolute(m.containerPath)) {
      throw invalidArgument(`mount container_path "${m.containerPath}" must be an absolute path`);
    }
    if (!m.hostPath) throw invalidArgument(`mount for "${m.containerPath}" has no host_path`);
    if (m.uidMappings.length > 0 || m.gidMappings.length > 0) {
      // One range each, as for the pod's user namespace (and the idmapped copy berth makes).
      if (m.uidMappings.length !== 1 || m.gidMappings.length !== 1) {
        throw invalidArgument(`mount "${m.containerPath}": an idmapped mount takes exactly one uid and one gid mapping`);
      }
      if (m.uidMappings[0].length === 0 || m.gidMappings[0].length === 0) {
        throw invalidArgument(`mount "${m.containerPath}": an idmapped mount's mapping has length 0`);
      }
    }
    if (m.image && m.image.image) {
      throw invalidArgument(`mount "${m.containerPath}": image volumes are not supported by berth`);
    }
    wanted.push({
      containerPath: path.posix.normalize(m.containerPath),
      hostPath: m.hostPath,
      readonly: m.readonly,
      recursiveReadOnly: m.recursiveReadOnly,
      propagation: m.propagation,
      ...(m.uidMappings.length > 0
        ? {
            idmap: {
              uidMappings: m.uidMappings.map((x) => ({ containerID: x.containerId, hostID: x.hostId, size: x.length })),
              gidMappings: m.gidMappings.map((x) => ({ containerID: x.containerId, hostID: x.hostId, size: x.length })),
            },
          }
        : {}),
    });
  }
  // The pod's own files, unless the CRI config mounts something at the same place
  // (kubelet mounts its own /etc/hosts, for example).
  const criDest = new Set(wanted.map((w) => w.containerPath));
  for (const p of podMounts(opts)) if (!criDest.has(p.containerPath)) wanted.push(p);

  // Shallow paths first so a deeper mount is not hidden by a later shallower one.
  const depth = (p: string): number => p.split('/').filter((s) => s !== '').length;
  wanted.sort((a, b) => depth(a.containerPath) - depth(b.containerPath));

  const dests = new Set(wanted.map((w) => w.containerPath));
  const devReplaced = dests.has('/dev');
  const mounts = defaultMounts(opts.privileged, !opts.hostSysfs).filter(
    (d) => !dests.has(d.destination) && !(devReplaced && d.destination.startsWith('/dev/')),
  );

  let rootfsPropagation: string | undefined;
  let table: MountInfoEntry[] | undefined;
  const mountTable = (): MountInfoEntry[] => (table ??= (opts.mountInfo ?? readMountInfoSync)());

  for (const w of wanted) {
    let source: string;
    try {
      source = fs.realpathSync(w.hostPath);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
        throw invalidArgument(`mount host path "${w.hostPath}" (for "${w.containerPath}") does not exist`, err);
      }
      throw invalidArgument(`mount host path "${w.hostPath}": ${errorMessage(err)}`, err);
    }
    const options = ['rbind'];
    switch (w.propagation) {
      case 'PROPAGATION_BIDIRECTIONAL': {
        const m = mountOf(source, mountTable());
        if (!m || !m.optional.some((o) => o.startsWith('shared:'))) {
          throw failedPrecondition(
            `mount "${w.containerPath}": bidirectional propagation needs host path "${source}" on a shared mount, ` +
              `but ${m ? `"${m.mountPoint}"` : 'its mount'} is not shared (mount --make-rshared it)`,
          );
        }
        options.push('rshared');
        rootfsPropagation = 'rshared';
        break;
      }
      case 'PROPAGATION_HOST_TO_CONTAINER': {
        const m = mountOf(source, mountTable());
        if (!m || !m.optional.some((o) => o.startsWith('shared:') || o.startsWith('master:'))) {
          throw failedPrecondition(
            `mount "${w.containerPath}": host-to-container propagation needs host path "${source}" on a shared or ` +
              `slave mount, but ${m ? `"${m.mountPoint}"` : 'its mount'} is private (mount --make-rshared it)`,
          );
        }
        options.push('rslave');
        if (rootfsPropagation !== 'rshared') rootfsPropagation = 'rslave';
        break;
      }
      default:
        options.push('rprivate');
    }
    if (w.readonly) {
      if (w.recursiveReadOnly) {
        if (!opts.recursiveReadOnlySupported) {
          throw invalidArgument(`mount "${w.containerPath}": the runtime handler does not support recursive read-only mounts`);
        }
        if (w.propagation !== 'PROPAGATION_PRIVATE') {
          throw invalidArgument(`mount "${w.containerPath}": a recursive read-only mount needs private propagation`);
        }
        options.push('rro');
      } else {
        options.push('ro');
      }
    } else {
      if (w.recursiveReadOnly) {
        throw invalidArgument(`mount "${w.containerPath}": recursive read-only conflicts with a read-write mount`);
      }
      options.push('rw');
    }
    mounts.push({ destination: w.containerPath, type: 'bind', source, options, ...w.idmap });
  }
  return rootfsPropagation ? { mounts, rootfsPropagation } : { mounts };
}
