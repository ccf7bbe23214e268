// HTTP_PROXY / HTTPS_PROXY / NO_PROXY for registry and token traffic, with
// the semantics containerd gets from Go's net/http (golang.org/x/net/http/httpproxy),
// so a node's proxy environment means the same thing to berth as to containerd:
//   - upper-case names win over lower-case ones; HTTPS_PROXY serves https
//     URLs, HTTP_PROXY http URLs; a proxy without a scheme is http://
//   - localhost and loopback addresses are never proxied
//   - NO_PROXY: comma-separated; "*" (everything), CIDRs ("10.0.0.0/8"), IPs
//     ("10.1.2.3", "[fd00::1]:5000"), domains ("example.com" matches it and
//     its subdomains, ".example.com" and "*.example.com" only subdomains),
//     each optionally with ":port" (matched against the URL's port, 80/443
//     when it names none)
// http URLs go to the proxy in absolute form; https URLs through a CONNECT
// tunnel, so TLS (and its verification) stays end to end.
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { invalidArgument } from '../errors';

export interface ProxyEnvironment {
  HTTP_PROXY?: string;
  http_proxy?: string;
  HTTPS_PROXY?: string;
  https_proxy?: string;
  NO_PROXY?: string;
  no_proxy?: string;
}

interface NoProxyRule {
  test(host: string, port: string, ip: string | undefined): boolean;
}

function parseProxyUrl(name: string, raw: string): URL {
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  // Go retries "host:port" (which URL parses as a scheme) as http://host:port.
  if (!u || !u.host || !/^[a-z][a-z0-9+.-]*:$/.test(u.protocol) || !['http:', 'https:', 'socks5:', 'socks5h:'].includes(u.protocol)) {
    try {
      u = new URL(`http://${raw}`);
    } catch {
      throw invalidArgument(`${name}=${raw}: not a proxy URL`);
    }
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw invalidArgument(`${name}=${raw}: only http:// and https:// proxies are supported, not ${u.protocol}//`);
  }
  return u;
}

/** An IPv4 or IPv6 address as 4 or 16 bytes (IPv4-mapped IPv6 as 4, as Go compares them), or undefined for a name. */
function ipBytes(s: string): number[] | undefined {
  const kind = net.isIP(s);
  if (kind === 4) return s.split('.').map(Number);
  if (kind !== 6) return undefined;
  let text = s.replace(/%.*$/, '');
  let tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail = dotted[2].split('.').map(Number);
    text = dotted[1].endsWith('::') ? dotted[1] : dotted[1].slice(0, -1);
  }
  const words = (p: string) => (p ? p.split(':').map((g) => parseInt(g, 16)) : []);
  const total = 8 - tail.length / 2;
  let all: number[];
  if (text.includes('::')) {
    const [head, rest] = text.split('::');
    const h = words(head);
    const r = words(rest);
    all = [...h, ...new Array<number>(total - h.length - r.length).fill(0), ...r];
  } else {
    all = words(text);
  }
  const bytes: number[] = [];
  for (const w of all) bytes.push(w >> 8, w & 0xff);
  bytes.push(...tail);
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  return bytes;
}

function isLoopbackIp(b: number[]): boolean {
  return b.length === 4 ? b[0] === 127 : b.every((x, i) => x === (i === 15 ? 1 : 0));
}

function cidrRule(text: string): NoProxyRule | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const net0 = ipBytes(text.slice(0, slash));
  const bitsText = text.slice(slash + 1);
  if (!net0 || !/^\d+$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  if (bits > net0.length * 8) return undefined;
  return {
    test: (_host, _port, ip) => {
      const b = ip === undefined ? undefined : ipBytes(ip);
      if (!b || b.length !== net0.length) return false;
      for (let i = 0; i < bits; i++) {
        const mask = 0x80 >> i % 8;
        if ((b[i >> 3] & mask) !== (net0[i >> 3] & mask)) return false;
      }
      return true;
    },
  };
}

/** Splits "host:port" / "[v6]:port" as Go's net.SplitHostPort does; undefined when there is no port. */
function splitHostPort(s: string): { host: string; port: string } | undefined {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return undefined;
    return { host: s.slice(1, end), port: s.slice(end + 2) };
  }
  const i = s.lastIndexOf(':');
  if (i < 0 || s.indexOf(':') !== i) return undefined;
  return { host: s.slice(0, i), port: s.slice(i + 1) };
}

function parseNoProxy(value: string): { all: boolean; rules: NoProxyRule[] } {
  const rules: NoProxyRule[] = [];
  for (const entry of value.split(',')) {
    const p = entry.trim().toLowerCase();
    if (!p) continue;
    if (p === '*') return { all: true, rules: [] };
    const cidr = cidrRule(p);
    if (cidr) {
      rules.push(cidr);
      continue;
    }
    const hp = splitHostPort(p);
    let host = hp ? hp.host : p;
    const port = hp ? hp.port : '';
    if (hp && !host) continue; // ":80" names no host: malformed, ignored as Go does
    const ip = ipBytes(host);
    if (ip) {
      const want = ip.join('.');
      rules.push({ test: (_h, reqPort, reqIp) => reqIp !== undefined && ipBytes(reqIp)?.join('.') === want && (!port || port === reqPort) });
      continue;
    }
    if (host.startsWith('*.')) host = host.slice(1);
    const matchBare = !host.startsWith('.');
    const suffix = matchBare ? `.${host}` : host;
    rules.push({
      test: (reqHost, reqPort) => (reqHost.endsWith(suffix) || (matchBare && reqHost === suffix.slice(1))) && (!port || port === reqPort),
    });
  }
  return { all: false, rules };
}

/** Which proxy, if any, a registry URL goes through; built once from the environment. */
export class ProxyConfig {
  private readonly http?: URL;
  private readonly https?: URL;
  private readonly noProxy: { all: boolean; rules: NoProxyRule[] };

  constructor(env: ProxyEnvironment = {}) {
    const pick = (upper: string | undefined, lower: string | undefined) => (upper !== undefined && upper !== '' ? upper : lower) || undefined;
    const h = pick(env.HTTP_PROXY, env.http_proxy);
    const s = pick(env.HTTPS_PROXY, env.https_proxy);
    if (h) this.http = parseProxyUrl('HTTP_PROXY', h);
    if (s) this.https = parseProxyUrl('HTTPS_PROXY', s);
    this.noProxy = parseNoProxy(pick(env.NO_PROXY, env.no_proxy) ?? '');
  }

  /** From process.env: the variables berthd was started with (systemd Environment=, /etc/default). */
  static fromProcessEnv(): ProxyConfig {
    const e = process.env;
    return new ProxyConfig({
      HTTP_PROXY: e.HTTP_PROXY,
      http_proxy: e.http_proxy,
      HTTPS_PROXY: e.HTTPS_PROXY,
      https_proxy: e.https_proxy,
      NO_PROXY: e.NO_PROXY,
      no_proxy: e.no_proxy,
    });
  }

  get configured(): boolean {
    return this.http !== undefined || this.https !== undefined;
  }

  /** The proxy for `url`, or undefined to connect directly. */
  proxyFor(url: URL): URL | undefined {
    const proxy = url.protocol === 'https:' ? this.https : url.protocol === 'http:' ? this.http : undefined;
    if (!proxy) return undefined;
    const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
    if (host === 'localhost') return undefined;
    const ip = net.isIP(host) ? host : undefined;
    const bytes = ip === undefined ? undefined : ipBytes(ip);
    if (bytes && isLoopbackIp(bytes)) return undefined;
    if (this.noProxy.all) return undefined;
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    // Domain rules never match an IP literal's text by accident of suffix (Go
    // checks IP rules first and domain rules on the text; both are kept here).
    for (const r of this.noProxy.rules) if (r.test(host, port, ip)) return undefined;
    return proxy;
  }

  /** Describes the settings for the start-up log (credentials in proxy URLs are never printed). */
  describe(): Record<string, string> {
    const show = (u?: URL) => (u ? `${u.protocol}//${u.host}` : '');
    return { httpProxy: show(this.http), httpsProxy: show(this.https) };
  }
}

/** Proxy-Authorization for a proxy URL with user:password in it. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined;
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
}

export interface TunnelAgentOptions extends https.AgentOptions {
  proxy: URL;
  /** How long the proxy may take to answer CONNECT. */
  connectTimeoutMs: number;
}

/**
 * An https.Agent whose connections are CONNECT tunnels through an HTTP(S)
 * proxy; TLS to the registry then runs inside the tunnel with the agent's
 * own CA, client certificate and verification settings.
 */
export class TunnelAgent extends https.Agent {
  private readonly proxy: URL;
  private readonly connectTimeoutMs: number;

  constructor(opts: TunnelAgentOptions) {
    const { proxy, connectTimeoutMs, ...agentOpts } = opts;
    super(agentOpts);
    this.proxy = proxy;
    this.connectTimeoutMs = connectTimeoutMs;
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const done = callback ?? (() => undefined);
    const host = String(options.host ?? options.hostname ?? 'localhost');
    const port = Number(options.port ?? 443);
    const target = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const headers: Record<string, string> = { Host: target };
    const auth = proxyAuthorization(this.proxy);
    if (auth) headers['Proxy-Authorization'] = auth;
    const mod = this.proxy.protocol === 'https:' ? https : http;
    const req = mod.request({
      host: this.proxy.hostname.replace(/^\[|\]$/g, ''),
      port: Number(this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80)),
      method: 'CONNECT',
      path: target,
      headers,
      agent: false,
    });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      req.destroy();
      done(err, undefined as unknown as Duplex);
    };
    req.setTimeout(this.connectTimeoutMs, () => fail(new Error(`proxy ${this.proxy.host}: no answer to CONNECT ${target} for ${Math.round(this.connectTimeoutMs / 1000)}s`)));
    req.once('error', (err) => fail(Object.assign(new Error(`proxy ${this.proxy.host}: ${err.message}`), { code: (err as NodeJS.ErrnoException).code, cause: err })));
    req.once('response', (res) => {
      // A proxy that answers CONNECT with an ordinary response refused the tunnel.
      res.resume();
      fail(new Error(`proxy ${this.proxy.host} refused CONNECT ${target}: ${res.statusCode ?? 0} ${res.statusMessage ?? ''}`.trim()));
    });
    req.once('connect', (res, socket, head) => {
      if (settled) return;
      req.setTimeout(0);
      if (res.statusCode !== 200) {
        socket.destroy();
        fail(new Error(`proxy ${this.proxy.host} refused CONNECT ${target}: ${res.statusCode ?? 0} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      if (head.length) socket.unshift(head);
      settled = true;
      const servername = options.servername ?? (net.isIP(host) ? undefined : host);
      const secured = tls.connect({ ...(options as tls.ConnectionOptions), socket, servername });
      done(null, secured);
    });
    req.end();
    return undefined;
  }
}
