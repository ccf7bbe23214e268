// HTTP(S) requests for the registry client on node:http/https: redirects
// (Authorization dropped when a redirect leaves the host), per-endpoint TLS,
// and a progress timeout - a transfer is abandoned only when no bytes arrive
// for too long while we are waiting for them, never for being merely long.
import * as http from 'node:http';
import * as https from 'node:https';
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { deadlineExceeded, invalidArgument, unavailable, errorMessage } from '../errors';
import type { TlsSettings } from './hosts';

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  tls?: TlsSettings;
  progressTimeoutMs: number;
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

/** Connection pools by protocol + TLS settings (by content: hosts.toml is re-read per pull), so keep-alive works across requests. */
export class AgentPool {
  private readonly agents = new Map<string, http.Agent>();

  private static tlsKey(tls?: TlsSettings): string {
    if (!tls) return 'default';
    const h = createHash('sha256');
    for (const ca of tls.ca ?? []) h.update(ca).update('\0ca');
    if (tls.cert) h.update(tls.cert).update('\0cert');
    if (tls.key) h.update(tls.key).update('\0key');
    h.update(tls.rejectUnauthorized ? 'verify' : 'skip');
    return h.digest('hex');
  }

  get(protocol: string, tls?: TlsSettings): http.Agent {
    const key = protocol === 'https:' ? `https#${AgentPool.tlsKey(tls)}` : 'http';
    let agent = this.agents.get(key);
    if (!agent) {
      agent =
        protocol === 'https:'
          ? new https.Agent({
              keepAlive: true,
              ca: tls?.ca,
              cert: tls?.cert,
              key: tls?.key,
              rejectUnauthorized: tls?.rejectUnauthorized ?? true,
            })
          : new http.Agent({ keepAlive: true });
      this.agents.set(key, agent);
    }
    return agent;
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

function sendOnce(req: HttpRequest, agents: AgentPool): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const mod = req.url.protocol === 'https:' ? https : http;
    const r = mod.request(req.url, {
      method: req.method,
      headers: { 'User-Agent': 'berth', ...req.headers },
      agent: agents.get(req.url.protocol, req.tls),
    });
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
    try {
      res = await sendOnce(current, agents);
    } catch (err) {
      if (err instanceof Error && 'kind' in err) throw err;
      const e = unavailable(`${current.method} ${describeUrl(current.url)}: ${errorMessage(err)}`, err);
      throw e;
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
