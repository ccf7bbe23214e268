// Whether the configured cgroup driver (runtime.cgroup_driver) works on this
// host, checked before berthd starts: a driver that cannot work would fail
// every pod later with a less clear error, and the kubelet takes its own
// driver from what berthd reports (RuntimeConfig).
//
// "systemd" needs systemd as PID 1, its D-Bus API answering, and, on a
// cgroup v1 host, controller hierarchies it can write (systemd skips a
// read-only one, and the pod limits put there would silently do nothing).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { errorMessage, failedPrecondition } from '../errors';
import { detectCgroupLayout } from './cgroups';
import { SystemdManager } from './systemd/manager';

export interface DriverHost {
  /** sd_booted(3): /run/systemd/system exists only when systemd is PID 1. */
  bootedWithSystemd(): boolean;
  pid1Name(): string;
  /** Whether a unix socket accepts connections. */
  connectable(socket: string): Promise<boolean>;
  /** Throws when no cgroup hierarchy is mounted. */
  cgroupLayout(): unknown;
  /** systemd's version over D-Bus; throws when it does not answer. */
  systemdVersion(): Promise<string>;
  /** cgroup v1 controller hierarchies this process cannot write (mounted read-only), by mountpoint. */
  readOnlyHierarchies(): string[];
}

export const SYSTEMD_BUS_SOCKETS = ['/run/systemd/private', '/run/dbus/system_bus_socket'];

/** The controllers berth's pod and container limits live in. */
const LIMIT_CONTROLLERS = ['cpu', 'memory', 'pids'];

/** This host; `systemd` is the manager berthd will use (one is made for the check when absent). */
export function realDriverHost(systemd?: SystemdManager): DriverHost {
  return {
    bootedWithSystemd: () => {
      try {
        return fs.lstatSync('/run/systemd/system').isDirectory();
      } catch {
        return false;
      }
    },
    pid1Name: () => {
      try {
        return fs.readFileSync('/proc/1/comm', 'utf8').trim();
      } catch {
        return 'unknown';
      }
    },
    connectable: (socket) =>
      new Promise((resolve) => {
        const s = net.connect(socket, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    cgroupLayout: () => detectCgroupLayout(),
    systemdVersion: async () => {
      const m = systemd ?? new SystemdManager({ timeoutMs: 10_000 });
      try {
        return await m.version();
      } finally {
        if (!systemd) m.close();
      }
    },
    readOnlyHierarchies: () => {
      const layout = detectCgroupLayout();
      if (layout.version === 2) return [];
      return layout.hierarchies
        .filter((h) => h.controllers.some((c) => LIMIT_CONTROLLERS.includes(c)))
        .map((h) => h.mountpoint)
        .filter((m) => {
          try {
            fs.accessSync(path.join(m, 'cgroup.procs'), fs.constants.W_OK);
            return false;
          } catch {
            return true;
          }
        });
    },
  };
}

/** Throws FAILED_PRECONDITION naming the key and what the host lacks when `driver` cannot work here. */
export async function checkCgroupDriver(driver: 'cgroupfs' | 'systemd', host: DriverHost = realDriverHost()): Promise<void> {
  const key = `runtime.cgroup_driver = "${driver}"`;
  if (driver === 'cgroupfs') {
    try {
      host.cgroupLayout();
    } catch (err) {
      throw failedPrecondition(`${key}: ${errorMessage(err)}`);
    }
    return;
  }
  if (!host.bootedWithSystemd()) {
    throw failedPrecondition(
      `${key} needs systemd as PID 1, and PID 1 here is "${host.pid1Name()}" (/run/systemd/system is missing); set runtime.cgroup_driver = "cgroupfs"`,
    );
  }
  let reachable = false;
  for (const s of SYSTEMD_BUS_SOCKETS) if (!reachable && (await host.connectable(s))) reachable = true;
  if (!reachable) {
    throw failedPrecondition(`${key}: systemd is PID 1 but its D-Bus endpoints (${SYSTEMD_BUS_SOCKETS.join(', ')}) accept no connection`);
  }
  try {
    await host.systemdVersion();
  } catch (err) {
    throw failedPrecondition(`${key}: systemd's D-Bus API does not answer: ${errorMessage(err)}`);
  }
  const readOnly = host.readOnlyHierarchies();
  if (readOnly.length > 0) {
    throw failedPrecondition(
      `${key}: the cgroup v1 hierarchies ${readOnly.join(', ')} are read-only here, so systemd cannot put pod and container limits in them (a container manager such as systemd-nspawn mounts them so); set runtime.cgroup_driver = "cgroupfs"`,
    );
  }
}
