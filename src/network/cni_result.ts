// CNI ADD results in one internal shape. Versions 0.3.x, 0.4.0 and 1.0.0 share
// the interfaces/ips/routes/dns layout; 0.3.x and 0.4.0 add a per-IP
// "version" ("4"/"6") which 1.0.0 dropped, so the family is derived from the
// address itself.
import * as net from 'node:net';

export interface CniInterface {
  name: string;
  mac?: string;
  /** The netns path for interfaces inside the pod; absent for host-side ones. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** The address without prefix length, e.g. 10.90.0.5. */
  ip: string;
  prefixLength: number;
  gateway?: string;
  version: 4 | 6;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

/** Splits "10.1.2.3/24" into its address and prefix length; throws when malformed. */
export function parseCidr(cidr: string): { ip: string; prefixLength: number; version: 4 | 6 } {
  const slash = cidr.lastIndexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = net.isIP(ip);
  if (family === 0) throw new Error(`"${cidr}" is not an IP address with prefix length`);
  const max = family === 4 ? 32 : 128;
  const digits = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefixLength = Number(digits);
  if (!/^\d+$/.test(digits) || prefixLength > max) throw new Error(`"${cidr}" has an invalid prefix length`);
  return { ip, prefixLength, version: family === 4 ? 4 : 6 };
}

/** Converts a plugin's ADD output (0.3.x/0.4.0/1.0.0) into the internal form; throws on a malformed result. */
export function parseResult(raw: unknown, expectedVersion: string): CniResult {
  if (!isObject(raw)) throw new Error('the result is not a JSON object');
  const cniVersion = optString(raw.cniVersion) ?? expectedVersion;
  if (cniVersion.startsWith('0.1.') || cniVersion.startsWith('0.2.'))
    throw new Error(`result version ${cniVersion} is not supported (use cniVersion 0.3.0 or newer)`);
  const interfaces: CniInterface[] = [];
  if (raw.interfaces !== undefined) {
    if (!Array.isArray(raw.interfaces)) throw new Error('"interfaces" is not an array');
    for (const i of raw.interfaces) {
      if (!isObject(i) || typeof i.name !== 'string') throw new Error('an interface has no name');
      interfaces.push({ name: i.name, mac: optString(i.mac), sandbox: optString(i.sandbox) });
    }
  }
  const ips: CniIpConfig[] = [];
  if (raw.ips !== undefined) {
    if (!Array.isArray(raw.ips)) throw new Error('"ips" is not an array');
    for (const entry of raw.ips) {
      if (!isObject(entry) || typeof entry.address !== 'string') throw new Error('an IP entry has no address');
      const { ip, prefixLength, version } = parseCidr(entry.address);
      const idx = entry.interface;
      const gateway = optString(entry.gateway);
      ips.push({
        ip,
        prefixLength,
        version,
        ...(gateway ? { gateway } : {}),
        ...(typeof idx === 'number' && Number.isInteger(idx) && idx >= 0 && idx < interfaces.length ? { interface: idx } : {}),
      });
    }
  }
  const routes: CniRoute[] = [];
  if (Array.isArray(raw.routes)) {
    for (const r of raw.routes) {
      if (isObject(r) && typeof r.dst === 'string') {
        const gw = optString(r.gw);
        routes.push({ dst: r.dst, ...(gw ? { gw } : {}) });
      }
    }
  }
  const dns: CniDns = {};
  if (isObject(raw.dns)) {
    const nameservers = stringList(raw.dns.nameservers);
    const domain = optString(raw.dns.domain);
    const search = stringList(raw.dns.search);
    const options = stringList(raw.dns.options);
    if (nameservers) dns.nameservers = nameservers;
    if (domain) dns.domain = domain;
    if (search) dns.search = search;
    if (options) dns.options = options;
  }
  return { cniVersion, interfaces, ips, routes, dns };
}

/** The pod's own addresses: those on an interface inside the sandbox (or not tied to any interface). */
export function podIps(result: CniResult): CniIpConfig[] {
  return result.ips.filter((ip) => ip.interface === undefined || result.interfaces[ip.interface]?.sandbox !== undefined);
}
