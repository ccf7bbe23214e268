// Registry endpoints for a registry host, from containerd's hosts.toml format
// (docs/hosts.md in containerd), with containerd's semantics:
//   <registry_config_dir>/<dir>/hosts.toml, <dir> the first that exists of
//   "host_port_" (for "host:port"), "host:port", "_default"
//     server = "https://registry.example.com"    # default: the registry itself
//     ca, client, skip_verify, header, override_path, dial_timeout, capabilities
//     [host."https://mirror:5000"]                # tried first, in file order
//       capabilities = ["pull", "resolve"]
//       ca = "ca.pem" | ["a.pem", "b.pem"]        # added to the system roots
//       client = "c.pem" | ["c1.pem", "c2.pem"] | [["c.cert", "c.key"], ["c.pem", ""]]
//       skip_verify = true
//       header = { x-a = "1", x-b = ["2", "3"] }
//       override_path = true                       # the URL path is the API root
//       dial_timeout = "1s"
// Relative paths are relative to the hosts.toml's directory. A directory with
// no (or an empty) hosts.toml is read the Docker way: *.crt are CAs, *.cert
// with a matching *.key are client certificates, for the registry itself.
// An http:// host with TLS settings (and a port other than 80) is tried over
// HTTPS first, falling back to HTTP when the server answers in plain HTTP.
// Requests to a host other than the image's registry carry ?ns=<registry>.
// Without a directory the upstream is https://<host>, except loopback
// registries, which are plain HTTP.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Limits } from '../limits';
import { readFileCapped } from '../util/read_capped';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument, errnoCode, errorMessage } from '../errors';
import { DEFAULT_DOMAIN } from '../oci/reference';

export type Capability = 'pull' | 'resolve' | 'push';

export interface ClientCertificate {
  cert: Buffer;
  key: Buffer;
}

export interface TlsSettings {
  /** Extra CA certificates, trusted in addition to the system's roots. */
  ca?: Buffer[];
  /** Client certificates; the first of each key type is offered (OpenSSL holds one per type). */
  clients?: ClientCertificate[];
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
  /** Extra headers (hosts.toml [header]); a list becomes repeated header lines. */
  headers: Record<string, string[]>;
  /** A mirror (from [host."..."]) rather than the upstream server. */
  mirror: boolean;
  /** containerd's ?ns= query: the image's registry, when this endpoint is another host. */
  namespace?: string;
  /** Connection attempts give up after this long (dial_timeout). */
  dialTimeoutMs?: number;
  /** Configured as http:// with TLS settings: tried over HTTPS first, as containerd does. */
  httpFallback: boolean;
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

const ALL_CAPABILITIES: ReadonlySet<Capability> = new Set<Capability>(['pull', 'resolve', 'push']);

/** Whether requests to `endpointHost` for images of `domain` carry ?ns= (containerd's RegistryHost.isProxy). */
function namespaceFor(domain: string, endpointHost: string): string | undefined {
  if (endpointHost === domain) return undefined;
  if (domain === DEFAULT_DOMAIN && endpointHost === 'registry-1.docker.io') return undefined;
  return domain;
}

function defaultUpstream(domain: string): RegistryEndpoint {
  const host = defaultApiHost(domain);
  return {
    protocol: isLoopbackHost(domain) ? 'http:' : 'https:',
    host,
    apiPath: '/v2',
    capabilities: ALL_CAPABILITIES,
    tls: { rejectUnauthorized: true },
    headers: {},
    mirror: false,
    httpFallback: false,
  };
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** A Go duration ("1s", "500ms", "1m30s", "1.5h") in milliseconds, as containerd parses dial_timeout. */
export function parseGoDuration(s: string): number | undefined {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (s === '0') return 0;
  const m = /^([+-]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) return undefined;
  let total = 0;
  for (const part of m[2].matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * units[part[2]];
  return m[1] === '-' ? -total : total;
}

/** PEM blocks of a file by type, so a single file may hold both a certificate and its key. */
function pemBlocks(pem: string, type: RegExp): string[] {
  return [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].filter((m) => type.test(m[1])).map((m) => m[0] + '\n');
}

class HostsFile {
  constructor(
    readonly file: string,
    readonly dir: string,
  ) {}

  fail(msg: string): never {
    throw invalidArgument(`${this.file}: ${msg}`);
  }

  read(p: string, what: string): Buffer {
    const full = path.isAbsolute(p) ? p : path.join(this.dir, p);
    try {
      return readFileCapped(full, Limits.hostsCertBytes, what);
    } catch (err) {
      return this.fail(`cannot read ${what} ${full}: ${errorMessage(err)}`);
    }
  }

  strings(v: unknown, key: string): string[] {
    if (typeof v === 'string') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return this.fail(`"${key}" must be a string or an array of strings`);
  }

  /** [cert, key] path pairs from `client` (a key "" means: in the certificate's file). */
  clientPairs(v: unknown): Array<[string, string]> {
    if (typeof v === 'string') return [[v, '']];
    if (!Array.isArray(v)) return this.fail('"client" must be a path, a list of paths or a list of [cert, key] pairs');
    return v.map((p): [string, string] => {
      if (typeof p === 'string') return [p, ''];
      if (Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'string')) return [p[0] as string, p[1] as string];
      return this.fail(`invalid pair ${JSON.stringify(p)} for "client": want ["cert", "key"]`);
    });
  }

  client(certPath: string, keyPath: string): ClientCertificate {
    const certPem = this.read(certPath, 'client certificate').toString('utf8');
    const keyPem = keyPath ? this.read(keyPath, 'client key').toString('utf8') : certPem;
    const certs = pemBlocks(certPem, /CERTIFICATE$/);
    const keys = pemBlocks(keyPem, /PRIVATE KEY$/);
    const where = keyPath ? `${certPath} and ${keyPath}` : certPath;
    if (!certs.length || !keys.length) this.fail(`client certificate ${where}: no ${certs.length ? 'private key' : 'certificate'} found`);
    try {
      const x509 = new X509Certificate(certs[0]);
      if (!x509.checkPrivateKey(createPrivateKey(keys[0]))) this.fail(`client certificate ${where}: the key does not match the certificate`);
    } catch (err) {
      if (err instanceof Error && 'kind' in err) throw err;
      this.fail(`client certificate ${where}: ${errorMessage(err)}`);
    }
    return { cert: Buffer.from(certs.join('')), key: Buffer.from(keys[0]) };
  }
}

/** One [host."..."] table or the top level (with `server`): containerd's parseHostConfig. */
function parseHost(hf: HostsFile, server: string | undefined, t: Table, domain: string, mirror: boolean): RegistryEndpoint {
  const where = mirror ? `[host."${server}"]` : 'top level';
  const base = server === undefined ? defaultUpstream(domain) : undefined;
  let protocol: 'http:' | 'https:';
  let host: string;
  let apiPath: string;
  if (server !== undefined) {
    let u: URL;
    try {
      u = new URL(server.includes('://') ? server : `https://${server}`);
    } catch {
      return hf.fail(`"${server}" is not a valid registry URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') hf.fail(`"${server}" must be http or https`);
    protocol = u.protocol;
    host = u.host;
    apiPath = path.posix.normalize(u.pathname || '/').replace(/\/+$/, '');
    if (t.override_path !== true && !apiPath.endsWith('/v2')) apiPath = `${apiPath}/v2`;
  } else {
    ({ protocol, host, apiPath } = base ?? defaultUpstream(domain));
  }

  // Unknown keys are ignored, as containerd ignores them: a file written for it must load here.

  let capabilities: ReadonlySet<Capability> = ALL_CAPABILITIES;
  // Without a server, the registry itself is the upstream and can do everything (as in containerd).
  if (t.capabilities !== undefined && server !== undefined) {
    const caps = new Set<Capability>();
    for (const c of hf.strings(t.capabilities, 'capabilities')) {
      const lc = c.toLowerCase();
      if (lc === 'pull' || lc === 'resolve' || lc === 'push') caps.add(lc);
      else if (lc !== 'referrers') hf.fail(`${where}: unknown capability ${JSON.stringify(c)}`);
    }
    capabilities = caps;
  }

  if (t.skip_verify !== undefined && typeof t.skip_verify !== 'boolean') hf.fail(`${where}: "skip_verify" must be true or false`);
  if (t.override_path !== undefined && typeof t.override_path !== 'boolean') hf.fail(`${where}: "override_path" must be true or false`);
  const tls: TlsSettings = { rejectUnauthorized: t.skip_verify !== true };
  if (t.ca !== undefined) tls.ca = hf.strings(t.ca, 'ca').map((c) => hf.read(c, 'CA certificate'));
  if (t.client !== undefined) tls.clients = hf.clientPairs(t.client).map(([c, k]) => hf.client(c, k));

  const headers: Record<string, string[]> = {};
  if (t.header !== undefined) {
    if (!isTable(t.header)) hf.fail(`${where}: "header" must be a table`);
    for (const [k, v] of Object.entries(t.header as Table)) headers[k] = hf.strings(v, `header.${k}`);
  }

  let dialTimeoutMs: number | undefined;
  if (t.dial_timeout !== undefined) {
    const d = typeof t.dial_timeout === 'string' ? parseGoDuration(t.dial_timeout) : undefined;
    if (d === undefined || d < 0) hf.fail(`${where}: "dial_timeout" must be a duration like "1s" or "500ms", got ${JSON.stringify(t.dial_timeout)}`);
    if (d > 0) dialTimeoutMs = d;
  }

  // containerd: an http:// host given TLS settings, on a port other than 80, is tried over HTTPS first.
  const explicitTls = t.ca !== undefined || t.client !== undefined || t.skip_verify !== undefined;
  const port = host.startsWith('[') ? host.slice(host.indexOf(']') + 2) : host.split(':')[1];
  const httpFallback = protocol === 'http:' && explicitTls && port !== '80';
  return {
    protocol: httpFallback ? 'https:' : protocol,
    host,
    apiPath,
    capabilities,
    tls,
    headers,
    mirror,
    namespace: namespaceFor(domain, host),
    dialTimeoutMs,
    httpFallback,
  };
}

/** The host directory for `domain`, as containerd's hostPaths orders them. */
export function hostDirFor(configDir: string, domain: string): string | undefined {
  if (!configDir) return undefined;
  const candidates: string[] = [];
  const colon = domain.lastIndexOf(':');
  if (colon > 0) candidates.push(`${domain.slice(0, colon)}_${domain.slice(colon + 1)}_`);
  candidates.push(domain, '_default');
  for (const c of candidates) {
    const d = path.join(configDir, c);
    try {
      if (fs.statSync(d).isDirectory()) return d;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw invalidArgument(`${d}: ${errorMessage(err)}`);
    }
  }
  return undefined;
}

/** Docker's certs.d layout: *.crt CAs, *.cert (+ same-name *.key) client certificates, for the registry itself. */
function dockerCertFiles(dir: string, domain: string): RegistryEndpoint {
  const hf = new HostsFile(dir, dir);
  const up = defaultUpstream(domain);
  const names = fs.readdirSync(dir).sort();
  const cas = names.filter((n) => n.endsWith('.crt'));
  const certs = names.filter((n) => n.endsWith('.cert'));
  const tls: TlsSettings = { rejectUnauthorized: true };
  if (cas.length) tls.ca = cas.map((n) => hf.read(n, 'CA certificate'));
  if (certs.length) {
    tls.clients = certs.map((n) => {
      const key = `${n.slice(0, -'.cert'.length)}.key`;
      return hf.client(n, names.includes(key) ? key : '');
    });
  }
  // A loopback registry is plain HTTP by default; given certificates it is tried over HTTPS first, as containerd does.
  const httpFallback = up.protocol === 'http:' && (cas.length > 0 || certs.length > 0) && !up.host.endsWith(':80');
  return { ...up, tls, protocol: httpFallback ? 'https:' : up.protocol, httpFallback };
}

/** The endpoints to try for `domain`, in order: mirrors first, upstream last. */
export function loadEndpoints(configDir: string, domain: string): RegistryEndpoint[] {
  const dir = hostDirFor(configDir, domain);
  if (!dir) return [defaultUpstream(domain)];
  const file = path.join(dir, 'hosts.toml');
  let text = '';
  try {
    // Bounded (main's hostile-input limits): a hosts.toml is a few lines.
    text = readFileCapped(file, Limits.hostsTomlBytes, 'hosts file').toString('utf8');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw invalidArgument(`${file}: ${errorMessage(err)}`);
  }
  if (text.length === 0) return [dockerCertFiles(dir, domain)];
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    throw invalidArgument(`${file}: ${errorMessage(err)}`);
  }
  const hf = new HostsFile(file, dir);
  const out: RegistryEndpoint[] = [];
  if (doc.host !== undefined) {
    if (!isTable(doc.host)) hf.fail('"host" must be a table of [host."URL"] tables');
    // smol-toml keeps the file's order of keys, which is the order mirrors are tried in.
    for (const [url, t] of Object.entries(doc.host as Table)) {
      if (!isTable(t)) hf.fail(`[host."${url}"] must be a table`);
      out.push(parseHost(hf, url, t as Table, domain, true));
    }
  }
  if (doc.server !== undefined && typeof doc.server !== 'string') hf.fail('"server" must be a string');
  const server = typeof doc.server === 'string' && doc.server !== '' ? doc.server : undefined;
  out.push(parseHost(hf, server, doc, domain, false));
  return out;
}
