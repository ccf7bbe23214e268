// Whether the configured cgroup driver (runtime.cgroup_driver) works on this
// host, checked before berthd starts: a driver that cannot work would fail
// every pod later with a less clear error, and the kubelet takes its own
// driver from what berthd reports (RuntimeConfig).
//
// "systemd" is refused on every host for now: berth does not yet create pod
// slices and container scopes over D-Bus (nor run runc with
// --systemd-cgroup). The checks before that say what the host lacks, so the
// message is right even once the driver exists.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { failedPrecondition } from '../errors';
import { detectCgroupLayout } from './cgroups';

export interface DriverHost {
  /** sd_booted(3): /run/systemd/system exists only when systemd is PID 1. */
  bootedWithSystemd(): boolean;
  pid1Name(): string;
  /** Whether a unix socket accepts connections. */
  connectable(socket: string): Promise<boolean>;
  /** Throws when no cgroup hierarchy is mounted. */
  cgroupLayout(): unknown;
}

export const SYSTEMD_BUS_SOCKETS = ['/run/systemd/private', '/run/dbus/system_bus_socket'];

export const realDriverHost: DriverHost = {
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
};

/** Throws FAILED_PRECONDITION naming the key and what the host lacks when `driver` cannot work here. */
export async function checkCgroupDriver(driver: 'cgroupfs' | 'systemd', host: DriverHost = realDriverHost): Promise<void> {
  const key = `runtime.cgroup_driver = "${driver}"`;
  if (driver === 'cgroupfs') {
    try {
      host.cgroupLayout();
    } catch (err) {
      throw failedPrecondition(`${key}: ${err instanceof Error ? err.message : String(err)}`);
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
  throw failedPrecondition(
    `${key}: systemd is PID 1 and reachable over D-Bus, but berth cannot manage pod slices and container scopes through it yet; set runtime.cgroup_driver = "cgroupfs"`,
  );
}
