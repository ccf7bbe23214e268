// The façade over systemd's D-Bus API (org.freedesktop.systemd1.Manager)
// that berth's systemd cgroup driver uses: transient slices and scopes,
// their properties, stopping them, and the jobs those calls queue. It talks
// to systemd's private socket (/run/systemd/private, root only, no bus
// daemon needed) or, failing that, the system bus. The connection is opened
// on first use and again after systemd drops it (daemon-reexec).
import { DbusConnection, DbusError, type DbusMessage, type MethodCall } from './dbus_connection';
import { Variant, type DbusValue } from './dbus_wire';

export const SYSTEMD_PRIVATE_SOCKET = '/run/systemd/private';
export const SYSTEM_BUS_SOCKET = '/run/dbus/system_bus_socket';

const DEST = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';

/** A unit property: name and typed value, as StartTransientUnit and SetUnitProperties take them. */
export type UnitProperty = [string, Variant];

export interface SystemdManagerOptions {
  /** Sockets tried in order. */
  sockets?: string[];
  /** Per call, and per job wait. */
  timeoutMs?: number;
}

/** Finished jobs remembered for a waiter that asks after the signal came (bounded). */
const REMEMBERED_JOBS = 256;

export class SystemdManager {
  private conn: Promise<DbusConnection> | undefined;
  private readonly sockets: string[];
  private readonly timeoutMs: number;
  private readonly jobWaiters = new Map<string, (result: string) => void>();
  private readonly finishedJobs = new Map<string, string>();

  constructor(opts: SystemdManagerOptions = {}) {
    this.sockets = opts.sockets ?? [SYSTEMD_PRIVATE_SOCKET, SYSTEM_BUS_SOCKET];
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** systemd's version string (Manager.Version): a cheap call that proves the connection works. */
  async version(): Promise<string> {
    const v = await this.getProperty(MANAGER_PATH, MANAGER, 'Version');
    return typeof v === 'string' ? v : String(v);
  }

  /**
   * Starts a transient unit and waits for its start job. Resolves false when
   * a unit of that name already exists (nothing was started).
   */
  async startTransientUnit(name: string, properties: UnitProperty[]): Promise<boolean> {
    try {
      await this.runJob('StartTransientUnit', 'ssa(sv)a(sa(sv))', [name, 'replace', properties, []], name);
      return true;
    } catch (err) {
      if (err instanceof DbusError && err.errorName === 'org.freedesktop.systemd1.UnitExists') return false;
      throw err;
    }
  }

  /** Stops a unit and waits for it; a unit systemd does not know is already stopped. */
  async stopUnit(name: string): Promise<void> {
    try {
      await this.runJob('StopUnit', 'ss', [name, 'replace'], name);
    } catch (err) {
      if (err instanceof DbusError && err.errorName === 'org.freedesktop.systemd1.NoSuchUnit') return;
      throw err;
    }
  }

  /** Sets properties of a running unit (runtime only: not written to /etc). */
  async setUnitProperties(name: string, properties: UnitProperty[]): Promise<void> {
    await this.call({ destination: DEST, path: MANAGER_PATH, interface: MANAGER, member: 'SetUnitProperties', signature: 'sba(sv)', body: [name, true, properties] });
  }

  /** The unit's ActiveState ("active", "inactive"...), or undefined when systemd has no such unit loaded. */
  async activeState(name: string): Promise<string | undefined> {
    const path = await this.unitPath(name);
    if (!path) return undefined;
    const v = await this.getProperty(path, 'org.freedesktop.systemd1.Unit', 'ActiveState');
    return typeof v === 'string' ? v : undefined;
  }

  /** One property of a unit (e.g. "org.freedesktop.systemd1.Scope", "MemoryLimit"); undefined when the unit is not loaded. */
  async unitProperty(name: string, iface: string, property: string): Promise<DbusValue | undefined> {
    const path = await this.unitPath(name);
    return path ? this.getProperty(path, iface, property) : undefined;
  }

  close(): void {
    void this.conn?.then((c) => c.close(), () => undefined);
    this.conn = undefined;
  }

  private async unitPath(name: string): Promise<string | undefined> {
    try {
      const r = await this.call({ destination: DEST, path: MANAGER_PATH, interface: MANAGER, member: 'GetUnit', signature: 's', body: [name] });
      return typeof r.body[0] === 'string' ? r.body[0] : undefined;
    } catch (err) {
      if (err instanceof DbusError && err.errorName === 'org.freedesktop.systemd1.NoSuchUnit') return undefined;
      throw err;
    }
  }

  private async getProperty(path: string, iface: string, property: string): Promise<DbusValue> {
    const r = await this.call({ destination: DEST, path, interface: 'org.freedesktop.DBus.Properties', member: 'Get', signature: 'ss', body: [iface, property] });
    const v = r.body[0];
    return v instanceof Variant ? v.value : (v ?? '');
  }

  /** Calls a Manager method that queues a job (returns its path), then waits for JobRemoved of that job. */
  private async runJob(member: string, signature: string, body: DbusValue[], unit: string): Promise<void> {
    const r = await this.call({ destination: DEST, path: MANAGER_PATH, interface: MANAGER, member, signature, body });
    const job = r.body[0];
    if (typeof job !== 'string') throw new Error(`systemd ${member} ${unit}: reply has no job`);
    const result = await this.waitJob(job, `${member} ${unit}`);
    if (result !== 'done') throw new Error(`systemd ${member} ${unit}: job ${result}`);
  }

  private waitJob(job: string, what: string): Promise<string> {
    const known = this.finishedJobs.get(job);
    if (known !== undefined) {
      this.finishedJobs.delete(job);
      return Promise.resolve(known);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.jobWaiters.delete(job);
        reject(new Error(`systemd ${what}: job ${job} did not finish within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.jobWaiters.set(job, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
    });
  }

  private onSignal(m: DbusMessage): void {
    if (m.interface !== MANAGER || m.member !== 'JobRemoved' || m.signature !== 'uoss') return;
    const job = m.body[1];
    const result = m.body[3];
    if (typeof job !== 'string' || typeof result !== 'string') return;
    const waiter = this.jobWaiters.get(job);
    if (waiter) {
      this.jobWaiters.delete(job);
      waiter(result);
      return;
    }
    this.finishedJobs.set(job, result);
    if (this.finishedJobs.size > REMEMBERED_JOBS) this.finishedJobs.delete(this.finishedJobs.keys().next().value as string);
  }

  private async call(c: MethodCall): Promise<DbusMessage> {
    const conn = await this.connection();
    return conn.call(c, this.timeoutMs);
  }

  private connection(): Promise<DbusConnection> {
    if (!this.conn) {
      const opening = this.open();
      this.conn = opening;
      opening.then(
        (c) => {
          c.onClose = () => {
            if (this.conn === opening) this.conn = undefined;
          };
        },
        () => {
          if (this.conn === opening) this.conn = undefined;
        },
      );
    }
    return this.conn;
  }

  private async open(): Promise<DbusConnection> {
    const errors: string[] = [];
    for (const socket of this.sockets) {
      let conn: DbusConnection;
      try {
        conn = await DbusConnection.connect(socket, this.timeoutMs);
      } catch (err) {
        errors.push(err instanceof Error ? err.message : String(err));
        continue;
      }
      conn.onSignal = (m) => this.onSignal(m);
      if (socket !== SYSTEMD_PRIVATE_SOCKET) {
        // Through the bus daemon: a name first, then ask for systemd's job signals.
        await conn.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello' }, this.timeoutMs);
        await conn.call(
          {
            destination: 'org.freedesktop.DBus',
            path: '/org/freedesktop/DBus',
            interface: 'org.freedesktop.DBus',
            member: 'AddMatch',
            signature: 's',
            body: [`type='signal',sender='${DEST}',interface='${MANAGER}',member='JobRemoved'`],
          },
          this.timeoutMs,
        );
      }
      // A direct connection gets every signal anyway; on the bus, systemd sends them only to subscribers.
      await conn.call({ destination: DEST, path: MANAGER_PATH, interface: MANAGER, member: 'Subscribe' }, this.timeoutMs);
      return conn;
    }
    throw new Error(`cannot reach systemd over D-Bus: ${errors.join('; ')}`);
  }
}

/** Property helpers with the types systemd expects. */
export const prop = {
  str: (name: string, v: string): UnitProperty => [name, new Variant('s', v)],
  bool: (name: string, v: boolean): UnitProperty => [name, new Variant('b', v)],
  u64: (name: string, v: bigint | number): UnitProperty => [name, new Variant('t', typeof v === 'bigint' ? v : BigInt(v))],
  strs: (name: string, v: string[]): UnitProperty => [name, new Variant('as', v)],
  pids: (v: number[]): UnitProperty => ['PIDs', new Variant('au', v)],
  bytes: (name: string, v: Buffer): UnitProperty => [name, new Variant('ay', [...v])],
};
