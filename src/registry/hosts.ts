// Registry endpoints for a registry host, from containerd-format hosts.toml:
//   <registry_config_dir>/<host>/hosts.toml   (falls back to _default/hosts.toml)
//     server = "https://registry.example.com"
//     [host."http://mirror:5000"]
//       capabilities = ["pull", "resolve"]
//       skip_verify = true
//       ca = "/etc/certs/ca.pem"              # or a list
//       client = [["/etc/certs/c.pem", "/etc/certs/c.key"]]
// Mirrors are tried in file order, then the server (upstream). Without a file,
// the upstream is https://<host>, except loopback registries, which are plain HTTP.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Limits } from '../limits';
import { readFileCapped } from '../util/read_capped';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument, errnoCode, errorMessage } from '../errors';
import { DEFAULT_DOMAIN } from '../oci/reference';

export type Capability = 'pull' | 'resolve' | 'push';

export interface TlsSettings {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
}

export interface RegistryEndpoint {
  /** "http:" or "https:". */
  protocol: 'http:' | 'https:';
  /** host[:port] to connect to. */
  host: string;
  /** Path prefix of the API, normally "/v2". */
  apiPath: string;
  capabilities: ReadonlySet<Capability>;
  tls: TlsSettings;
  headers: Record<string, string>;
  /** A mirror (from [host."..."]) rather than the upstream server. */
  mirror: boolean;
}

/** localhost, 127.0.0.0/8 and ::1, with or without a port. */
export function isLoopbackHost(hostWithPort: string): boolean {
  let h = hostWithPort;
  if (h.startsWith('[')) h = h.slice(1, h.indexOf(']'));
  else if (h.includes(':')) h = h.slice(0, h.lastIndexOf(':'));
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h);
}

/** The host the API of a registry domain lives at (Docker Hub's is not docker.io). */
export function defaultApiHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain;
}

function defaultUpstream(domain: string): RegistryEndpoint {
  return {
    protocol: isLoopbackHost(domain) ? 'http:' : 'https:',
    host: defaultApiHost(domain),
    apiPath: '/v2',
    capabilities: new Set<Capability>(['pull', 'resolve', 'push']),
    tls: { rejectUnauthorized: true },
    headers: {},
    mirror: false,
  };
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

function readFileFor(file: string, dir: string, what: string): Buffer {
  const p = path.isAbsolute(file) ? file : path.join(dir, file);
  try {
    return readFileCapped(p, Limits.hostsCertBytes, what);
  } catch (err) {
    throw invalidArgument(`${path.join(dir, 'hosts.toml')}: cannot read ${what} ${p}: ${errorMessage(err)}`);
  }
}

function parseEndpoint(url: string, t: Table, dir: string, mirror: boolean, file: string): RegistryEndpoint {
  let u: URL;
  try {
    u = new URL(url.includes('://') ? url : `https://${url}`);
  } catch {
    throw invalidArgument(`${file}: "${url}" is not a valid registry URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidArgument(`${file}: "${url}" must be http or https`);
  let apiPath = u.pathname.replace(/\/+$/, '');
  if (t.override_path !== true) apiPath = apiPath.endsWith('/v2') ? apiPath : `${apiPath}/v2`;

  const caps = new Set<Capability>();
  if (Array.isArray(t.capabilities)) {
    for (const c of t.capabilities) {
      if (c !== 'pull' && c !== 'resolve' && c !== 'push') throw invalidArgument(`${file}: unknown capability ${JSON.stringify(c)}`);
      caps.add(c);
    }
  } else {
    caps.add('pull').add('resolve').add('push');
  }

  const tls: TlsSettings = { rejectUnauthorized: t.skip_verify !== true };
  const cas = typeof t.ca === 'string' ? [t.ca] : Array.isArray(t.ca) ? t.ca : [];
  if (cas.length) tls.ca = cas.map((c) => readFileFor(String(c), dir, 'CA certificate'));
  // client = "cert.pem" | ["cert.pem", "key.pem"] | [["cert.pem", "key.pem"], ...]: the first pair is used.
  const client = t.client;
  let pair: unknown[] | undefined;
  if (typeof client === 'string') pair = [client];
  else if (Array.isArray(client) && client.length) pair = Array.isArray(client[0]) ? (client[0] as unknown[]) : client;
  if (pair && pair.length) {
    tls.cert = readFileFor(String(pair[0]), dir, 'client certificate');
    tls.key = readFileFor(String(pair[1] ?? pair[0]), dir, 'client key');
  }

  const headers: Record<string, string> = {};
  if (isTable(t.header)) {
    for (const [k, v] of Object.entries(t.header)) headers[k] = Array.isArray(v) ? v.map(String).join(', ') : String(v);
  }
  return { protocol: u.protocol, host: u.host, apiPath, capabilities: caps, tls, headers, mirror };
}

function hostsFileFor(configDir: string, domain: string): string | undefined {
  if (!configDir) return undefined;
  const candidates = [domain];
  if (domain === DEFAULT_DOMAIN) candidates.push('registry-1.docker.io');
  // containerd also accepts "host_port_" for directories that cannot hold a ':'.
  if (domain.includes(':') && !domain.startsWith('[')) candidates.push(`${domain.replace(':', '_')}_`);
  candidates.push('_default');
  for (const c of candidates) {
    const f = path.join(configDir, c, 'hosts.toml');
    if (fs.existsSync(f)) return f;
  }
  return undefined;
}

/** The endpoints to try for `domain`, in order: mirrors first, upstream last. */
export function loadEndpoints(configDir: string, domain: string): RegistryEndpoint[] {
  const file = hostsFileFor(configDir, domain);
  if (!file) return [defaultUpstream(domain)];
  let doc: Table;
  try {
    doc = parseToml(readFileCapped(file, Limits.hostsTomlBytes, 'hosts file').toString('utf8')) as Table;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [defaultUpstream(domain)];
    throw invalidArgument(`${file}: ${errorMessage(err)}`);
  }
  const dir = path.dirname(file);
  const out: RegistryEndpoint[] = [];
  if (isTable(doc.host)) {
    for (const [url, t] of Object.entries(doc.host)) {
      if (!isTable(t)) throw invalidArgument(`${file}: [host."${url}"] must be a table`);
      out.push(parseEndpoint(url, t, dir, true, file));
    }
  }
  // The _default file describes no particular server: the upstream stays the domain itself.
  if (typeof doc.server === 'string' && path.basename(dir) !== '_default') {
    out.push(parseEndpoint(doc.server, doc, dir, false, file));
  } else {
    const up = defaultUpstream(domain);
    const top = parseEndpoint(`${up.protocol}//${up.host}`, doc, dir, false, file);
    out.push({ ...top, capabilities: up.capabilities });
  }
  return out;
}
