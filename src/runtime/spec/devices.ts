// Devices of a container: CRI devices (host_path -> container_path), the host's
// devices for privileged containers, and the device-cgroup allowlist.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, invalidArgument } from '../../errors';
import type { Device__Output } from '../../gen/runtime/v1/Device';
import type { OciDeviceCgroup, OciLinuxDevice } from './oci_types';

/**
 * Deny everything, then allow what every container needs: mknod of any device,
 * and null, zero, full, random, urandom, tty, console, ptmx, pts/* and tun.
 */
export function defaultDeviceRules(): OciDeviceCgroup[] {
  const rwm = (major: number, minor?: number): OciDeviceCgroup =>
    minor === undefined ? { allow: true, type: 'c', major, access: 'rwm' } : { allow: true, type: 'c', major, minor, access: 'rwm' };
  return [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', access: 'm' },
    { allow: true, type: 'b', access: 'm' },
    rwm(1, 3), // null
    rwm(1, 5), // zero
    rwm(1, 7), // full
    rwm(1, 8), // random
    rwm(1, 9), // urandom
    rwm(5, 0), // tty
    rwm(5, 1), // console
    rwm(5, 2), // ptmx
    rwm(136), // pts/*
    rwm(10, 200), // net/tun
  ];
}

/** Linux dev_t split as glibc's major()/minor() do. */
export function splitDevNumber(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor & 0xffffffffn) };
}

/** The OCI device for a host device node (stat'ed), at `containerPath`; undefined if not a char/block device. */
export function deviceAt(hostPath: string, containerPath: string, stat: fs.BigIntStats): OciLinuxDevice | undefined {
  let type: 'c' | 'b';
  if (stat.isCharacterDevice()) type = 'c';
  else if (stat.isBlockDevice()) type = 'b';
  else return undefined;
  const { major, minor } = splitDevNumber(stat.rdev);
  return {
    path: containerPath,
    type,
    major,
    minor,
    fileMode: Number(stat.mode & 0o7777n),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
  };
}

// Directories under /dev that hold no devices a container should inherit.
const SKIP_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/** All char/block devices under `dir` (recursively), mapped under `containerDir`. */
export function devicesUnder(dir: string, containerDir: string): OciLinuxDevice[] {
  const out: OciLinuxDevice[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    const host = path.join(dir, name);
    let stat: fs.BigIntStats;
    try {
      stat = fs.lstatSync(host, { bigint: true });
    } catch {
      continue; // vanished while listing
    }
    if (stat.isDirectory()) {
      if (!SKIP_DIRS.has(name)) out.push(...devicesUnder(host, path.posix.join(containerDir, name)));
      continue;
    }
    if (host === '/dev/console') continue;
    const dev = deviceAt(host, path.posix.join(containerDir, name), stat);
    if (dev) out.push(dev);
  }
  return out;
}

/** The host's devices, given to privileged containers. */
export function hostDevices(): OciLinuxDevice[] {
  return devicesUnder('/dev', '/dev');
}

function checkPermissions(p: string, forPath: string): string {
  const perms = p === '' ? 'rwm' : p;
  if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) {
    throw invalidArgument(`device "${forPath}": permissions "${p}" must be a combination of r, w and m`);
  }
  return perms;
}

export interface DevicesResult {
  devices: OciLinuxDevice[];
  rules: OciDeviceCgroup[];
}

/** Resolves CRI devices; a directory host path adds every device below it. */
export function buildDevices(criDevices: readonly Device__Output[]): DevicesResult {
  const devices: OciLinuxDevice[] = [];
  const rules: OciDeviceCgroup[] = [];
  for (const d of criDevices) {
    if (!d.hostPath) throw invalidArgument('device has no host_path');
    const containerPath = d.containerPath || d.hostPath;
    if (!path.isAbsolute(containerPath)) {
      throw invalidArgument(`device container_path "${containerPath}" must be an absolute path`);
    }
    const access = checkPermissions(d.permissions, d.hostPath);
    let stat: fs.BigIntStats;
    try {
      stat = fs.statSync(d.hostPath, { bigint: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw invalidArgument(`device host path "${d.hostPath}" does not exist`, err);
      throw invalidArgument(`device host path "${d.hostPath}": ${errorMessage(err)}`, err);
    }
    const found = stat.isDirectory()
      ? devicesUnder(d.hostPath, containerPath)
      : [deviceAt(d.hostPath, containerPath, stat)].filter((x): x is OciLinuxDevice => x !== undefined);
    if (found.length === 0) {
      throw invalidArgument(`device host path "${d.hostPath}" is not a character or block device`);
    }
    for (const dev of found) {
      devices.push(dev);
      rules.push({ allow: true, type: dev.type === 'b' ? 'b' : 'c', major: dev.major, minor: dev.minor, access });
    }
  }
  return { devices, rules };
}
