// HTTP(S) requests for the registry client on node:http/https: redirects
// (Authorization dropped when a redirect leaves the host), per-endpoint TLS,
// and a progress timeout - a transfer is abandoned only when no bytes arrive
// for too long while we are waiting for them, never for being merely long.
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { createHash, createPrivateKey } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { deadlineExceeded, invalidArgument, unavailable, errorMessage } from '../errors';
import type { TlsSettings } from './hosts';
import { ProxyConfig, proxyAuthorization, TunnelAgent } from './proxy';

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  headers: Record<string, string | string[]>;
  body?: string;
  tls?: TlsSettings;
  progressTimeoutMs: number;
  /** Give up a connection attempt after this long (hosts.toml dial_timeout). */
  dialTimeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, watched for progress. Must be consumed or destroyed. */
  body: Readable;
  /** The URL that answered (after redirects). */
  url: URL;
}

const MAX_REDIRECTS = 10;

/** Where one request connects: the agent, and the proxy when the URL goes through one. */
export interface Route {
  agent: http.Agent;
  proxy?: URL;
}

/**
 * Connection pools by protocol + TLS settings (by content: hosts.toml is
 * re-read per pull) + proxy, so keep-alive works across requests.
 */
export class AgentPool {
  private readonly agents = new Map<string, http.Agent>();

  constructor(
    readonly proxies: ProxyConfig = new ProxyConfig(),
    private readonly connectTimeoutMs = 30_000,
  ) {}

  private static tlsKey(tls?: TlsSettings): string {
    if (!tls) return 'default';
    const h = createHash('sha256');
    for (const ca of tls.ca ?? []) h.update(ca).update('\0ca');
    for (const c of tls.clients ?? []) h.update(c.cert).update('\0cert').update(c.key).update('\0key');
    h.update(tls.rejectUnauthorized ? 'verify' : 'skip');
    return h.digest('hex');
  }

  private pooled(key: string, make: () => http.Agent): http.Agent {
    let agent = this.agents.get(key);
    if (!agent) {
      agent = make();
      this.agents.set(key, agent);
    }
    return agent;
  }

  /**
   * Node options for TLS settings. hosts.toml CAs are added to the system
   * roots, as Go's do. OpenSSL holds one client certificate per key type, so
   * the first of each type is offered (Go picks among all by the server's
   * accepted CAs; one certificate per registry is the common case).
   */
  private static tlsOptions(tls?: TlsSettings): https.AgentOptions {
    const certs: Buffer[] = [];
    const keys: Buffer[] = [];
    const types = new Set<string>();
    for (const c of tls?.clients ?? []) {
      const type = createPrivateKey(c.key).asymmetricKeyType ?? 'unknown';
      if (types.has(type)) continue;
      types.add(type);
      certs.push(c.cert);
      keys.push(c.key);
    }
    return {
      ca: tls?.ca ? [...rootCertificates, ...tls.ca] : undefined,
      cert: certs.length ? certs : undefined,
      key: keys.length ? keys : undefined,
      rejectUnauthorized: tls?.rejectUnauthorized ?? true,
    };
  }

  route(url: URL, tls?: TlsSettings): Route {
    const proxy = this.proxies.proxyFor(url);
    const tlsOptions = AgentPool.tlsOptions(tls);
    if (url.protocol === 'https:') {
      if (!proxy) return { agent: this.pooled(`https#${AgentPool.tlsKey(tls)}`, () => new https.Agent({ keepAlive: true, ...tlsOptions })) };
      const agent = this.pooled(
        `https#${AgentPool.tlsKey(tls)}#${proxy.href}`,
        () => new TunnelAgent({ keepAlive: true, ...tlsOptions, proxy, connectTimeoutMs: this.connectTimeoutMs }),
      );
      return { agent, proxy };
    }
    if (!proxy) return { agent: this.pooled('http', () => new http.Agent({ keepAlive: true })) };
    // Plain http through a proxy: requests go to the proxy itself, in absolute form.
    const agent = this.pooled(`http#${proxy.href}`, () => (proxy.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true })));
    return { agent, proxy };
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/** Passes bytes through, and fails the stream when none arrive for `ms` while the reader waits. */
function watchProgress(source: http.IncomingMessage, ms: number, what: string): Readable {
  let last = Date.now();
  const watched = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      last = Date.now();
      cb(null, chunk);
    },
  });
  const timer = setInterval(
    () => {
      // Paused or holding data: the consumer is the slow one, not the network.
      if (source.isPaused() || source.readableLength > 0 || watched.readableLength >= watched.readableHighWaterMark) {
        last = Date.now();
        return;
      }
      if (Date.now() - last > ms) {
        watched.destroy(deadlineExceeded(`${what}: no data received for ${Math.round(ms / 1000)}s, transfer abandoned`));
      }
    },
    Math.max(50, Math.min(1000, ms / 4)),
  );
  timer.unref();
  pipeline(source, watched, () => clearInterval(timer));
  watched.on('close', () => {
    clearInterval(timer);
    source.destroy();
  });
  return watched;
}

function describeUrl(u: URL): string {
  // Never print credentials or query strings (token endpoints may carry secrets).
  return `${u.protocol}//${u.host}${u.pathname}`;
}

function sendOnce(req: HttpRequest, route: Route): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { 'User-Agent': 'berth', ...req.headers };
    let r: http.ClientRequest;
    if (route.proxy && req.url.protocol === 'http:') {
      const proxy = route.proxy;
      const auth = proxyAuthorization(proxy);
      const mod = proxy.protocol === 'https:' ? https : http;
      r = mod.request({
        host: proxy.hostname.replace(/^\[|\]$/g, ''),
        port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)),
        method: req.method,
        path: req.url.href,
        headers: { Host: req.url.host, ...headers, ...(auth ? { 'Proxy-Authorization': auth } : {}) },
        agent: route.agent,
      });
    } else {
      const mod = req.url.protocol === 'https:' ? https : http;
      r = mod.request(req.url, { method: req.method, headers, agent: route.agent });
    }
    const dialMs = req.dialTimeoutMs;
    if (dialMs) {
      r.once('socket', (sock) => {
        if (!sock.connecting) return; // a kept-alive connection: nothing to dial
        const timer = setTimeout(() => {
          // Not a retryable errno: the endpoint is skipped for the next one, which is what dial_timeout is for.
          r.destroy(Object.assign(new Error(`connection not established within dial_timeout (${dialMs} ms)`), { code: 'EDIALTIMEOUT' }));
        }, dialMs);
        sock.once('connect', () => clearTimeout(timer));
        sock.once('close', () => clearTimeout(timer));
      });
    }
    r.setTimeout(req.progressTimeoutMs, () => {
      r.destroy(deadlineExceeded(`${req.method} ${describeUrl(req.url)}: no response for ${Math.round(req.progressTimeoutMs / 1000)}s`));
    });
    r.once('error', reject);
    r.once('response', (res) => {
      // From here the body watchdog owns timing; backpressure must not look like a stall.
      r.setTimeout(0);
      resolve(res);
    });
    r.end(req.body);
  });
}

/** Sends a request, following redirects. Network errors reject with the errno code kept on `cause`. */
export async function send(req: HttpRequest, agents: AgentPool): Promise<HttpResponse> {
  let current = req;
  for (let hop = 0; ; hop++) {
    let res: http.IncomingMessage;
    const route = agents.route(current.url, current.tls);
    try {
      res = await sendOnce(current, route);
    } catch (err) {
      if (err instanceof Error && 'kind' in err) throw err;
      const via = route.proxy ? ` (through proxy ${route.proxy.host})` : '';
      throw unavailable(`${current.method} ${describeUrl(current.url)}${via}: ${errorMessage(err)}`, err);
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if ([301, 302, 303, 307, 308].includes(status) && location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw unavailable(`${describeUrl(req.url)}: too many redirects`);
      const next = new URL(location, current.url);
      const headers = { ...current.headers };
      // Blob redirects typically point at object storage with signed URLs: our
      // registry credentials must not follow them there.
      if (next.host !== current.url.host) delete headers.Authorization;
      const sameOrigin = next.protocol === current.url.protocol && next.host === current.url.host;
      current = {
        ...current,
        url: next,
        headers,
        tls: sameOrigin ? current.tls : undefined,
        method: status === 303 ? 'GET' : current.method,
        body: status === 303 ? undefined : current.body,
      };
      continue;
    }
    const body = current.method === 'HEAD' ? res : watchProgress(res, req.progressTimeoutMs, `${current.method} ${describeUrl(current.url)}`);
    return { status, headers: res.headers, body, url: current.url };
  }
}

/**
 * Reads a small body fully (manifests, configs, token replies), refusing more
 * than `limit` bytes as they arrive: a declared Content-Length over the limit
 * is refused before reading, and the connection is dropped at the first byte
 * past it. Too big is the sender's fault, not an outage, so it is not retried.
 */
export async function readSmallBody(body: Readable, limit: number, what = 'response', declaredLength?: unknown): Promise<Buffer> {
  const declared = typeof declaredLength === 'string' && /^[0-9]+$/.test(declaredLength) ? Number(declaredLength) : undefined;
  if (declared !== undefined && declared > limit) {
    body.destroy();
    throw invalidArgument(`${what} is ${declared} bytes, over the ${limit}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw invalidArgument(`${what} is over the ${limit}-byte limit`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}
