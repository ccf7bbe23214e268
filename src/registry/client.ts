// OCI distribution / Docker Registry v2 client: resolves references to
// manifests and streams blobs, trying mirrors before the upstream, with
// anonymous, Basic and Bearer-token auth, and retries with backoff on
// dropped connections and 5xx (blob downloads resume where they stopped).
import { Readable } from 'node:stream';
import type { RegistryCredentialConfig } from '../config/config';
import { BerthError, errnoCode, errorMessage, notFound, unavailable, resourceExhausted, invalidArgument } from '../errors';
import type { Logger } from '../log/logger';
import { isSha256Digest, sha256Digest } from '../oci/digest';
import { Limits } from '../limits';
import type { Descriptor } from '../oci/manifest';
import { MANIFEST_ACCEPT } from '../oci/media_types';
import { formatReference, type ImageReference } from '../oci/reference';
import { basicAuthorization, CredentialSource, identityKey, parseChallenges, TokenCache, type Challenge, type CriAuthConfig, type Credentials } from './auth';
import { loadEndpoints, type Capability, type RegistryEndpoint } from './hosts';
import { AgentPool, readSmallBody, send, type HttpRequest, type HttpResponse } from './http';
import type { ProxyConfig } from './proxy';

export interface RegistryClientOptions {
  /** Directory of <host>/hosts.toml files. */
  configDir: string;
  /** config.image.credentials. */
  credentials: Record<string, RegistryCredentialConfig>;
  progressTimeoutMs: number;
  logger: Logger;
  /** Attempts per request on retryable failures (default 4). */
  attempts?: number;
  /** First retry delay in ms, doubled each time (default 250). */
  backoffMs?: number;
  /** HTTP(S)_PROXY / NO_PROXY; none when absent. */
  proxies?: ProxyConfig;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

const permissionDenied = (msg: string) => new BerthError('PERMISSION_DENIED', msg);

const RETRYABLE_ERRNO = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'EAI_AGAIN']);

function rootCause(err: unknown): unknown {
  let e = err;
  for (let i = 0; i < 5 && e instanceof Error && e.cause; i++) e = e.cause;
  return e;
}

/** Worth retrying on the same endpoint: dropped connections and server errors. */
function isRetryable(err: unknown): boolean {
  if (err instanceof RetryableStatus) return true;
  const code = errnoCode(rootCause(err)) ?? errnoCode(err);
  if (code && RETRYABLE_ERRNO.has(code)) return true;
  const msg = errorMessage(rootCause(err));
  return msg === 'aborted' || msg === 'socket hang up' || /premature close|closed before the whole blob/i.test(msg);
}

/** A connection failure: try the next endpoint rather than failing the pull. */
function isConnectionFailure(err: unknown): boolean {
  return err instanceof BerthError && (err.kind === 'UNAVAILABLE' || err.kind === 'DEADLINE_EXCEEDED');
}

class RetryableStatus extends BerthError {
  constructor(msg: string) {
    super('UNAVAILABLE', msg);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RegistryClient {
  private readonly agents: AgentPool;
  private readonly tokens = new TokenCache();
  /** The last challenge seen per endpoint host, to authenticate up front next time. */
  private readonly challenges = new Map<string, Challenge[]>();
  /** Hosts configured http:// with TLS settings that turned out to speak plain HTTP. */
  private readonly plainHttp = new Set<string>();

  constructor(readonly opts: RegistryClientOptions) {
    this.agents = new AgentPool(opts.proxies, opts.progressTimeoutMs);
  }

  /** A session for pulling one repository. `auth` is the CRI request's AuthConfig. */
  session(ref: ImageReference, auth?: CriAuthConfig): RegistrySession {
    const endpoints = loadEndpoints(this.opts.configDir, ref.domain);
    return new RegistrySession(this, ref, endpoints, new CredentialSource(this.opts.credentials, ref.domain, auth));
  }

  close(): void {
    this.agents.close();
  }

  /** SIGHUP: new hosts.toml directory and credentials for the pulls that start from now on. */
  reconfigure(configDir: string, credentials: Record<string, RegistryCredentialConfig>): void {
    this.opts.configDir = configDir;
    this.opts.credentials = credentials;
  }

  /** @internal One authenticated request; re-authenticates once on 401. */
  async request(
    ep: RegistryEndpoint,
    creds: Credentials | undefined,
    scope: string,
    method: 'GET' | 'HEAD',
    pathSuffix: string,
    headers: Record<string, string>,
  ): Promise<HttpResponse> {
    const protocol = ep.httpFallback && this.plainHttp.has(ep.host) ? 'http:' : ep.protocol;
    const url = new URL(`${protocol}//${ep.host}${ep.apiPath}/${pathSuffix}`);
    // A mirror learns which registry the image is from (containerd's ?ns=).
    if (ep.namespace) url.searchParams.set('ns', ep.namespace);
    const base = { method, url, tls: ep.tls, progressTimeoutMs: this.opts.progressTimeoutMs, dialTimeoutMs: ep.dialTimeoutMs };
    const known = this.challenges.get(ep.host);
    let authorization = known ? await this.authorize(ep, creds, known, scope) : creds?.registryToken ? `Bearer ${creds.registryToken}` : undefined;
    const withAuth = () => ({ ...ep.headers, ...headers, ...(authorization ? { Authorization: authorization } : {}) });
    let res = await this.sendTo(ep, { ...base, headers: withAuth() });
    if (res.status !== 401) return res;

    res.body.resume();
    const challenges = parseChallenges(res.headers['www-authenticate']);
    this.challenges.set(ep.host, challenges);
    // A token we sent was refused (revoked or expired early): fetch a fresh one.
    authorization = await this.authorize(ep, creds, challenges, scope, authorization !== undefined);
    if (!authorization) {
      throw permissionDenied(`${ep.host} requires authentication and no credentials are configured for it (pass them in the pull request or set image.credentials."${ep.host}")`);
    }
    res = await this.sendTo(ep, { ...base, headers: withAuth() });
    if (res.status === 401) {
      res.body.resume();
      throw permissionDenied(`${ep.host} refused the credentials (401 Unauthorized)`);
    }
    return res;
  }

  /**
   * Sends to an endpoint; an http:// host with TLS settings is tried over
   * HTTPS first and, when it answers the handshake in plain HTTP, over HTTP
   * from then on (containerd's HTTP fallback).
   */
  private async sendTo(ep: RegistryEndpoint, req: HttpRequest): Promise<HttpResponse> {
    try {
      return await send(req, this.agents);
    } catch (err) {
      if (!ep.httpFallback || req.url.protocol !== 'https:' || !/wrong version number|packet length too long|http request/i.test(errorMessage(rootCause(err)))) throw err;
      this.plainHttp.add(ep.host);
      this.opts.logger.info('registry host answered TLS in plain HTTP; using HTTP for it', { host: ep.host });
      const url = new URL(req.url);
      url.protocol = 'http:';
      return send({ ...req, url }, this.agents);
    }
  }

  private async authorize(
    ep: RegistryEndpoint,
    creds: Credentials | undefined,
    challenges: Challenge[],
    scope: string,
    fresh = false,
  ): Promise<string | undefined> {
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) return `Bearer ${await this.token(ep, creds, bearer, scope, fresh)}`;
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic && creds?.username !== undefined) return basicAuthorization(creds);
    return undefined;
  }

  /** A Bearer token from the challenge's realm, cached until it expires. */
  private async token(ep: RegistryEndpoint, creds: Credentials | undefined, ch: Challenge, scope: string, fresh: boolean): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw unavailable(`${ep.host} sent a Bearer challenge without a realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw unavailable(`${ep.host} sent a Bearer challenge with an invalid realm`);
    }
    const service = ch.params.service ?? '';
    const scopes = [scope, ...(ch.params.scope && ch.params.scope !== scope ? [ch.params.scope] : [])];
    const key = JSON.stringify([realm, service, scopes, identityKey(creds)]);
    const cached = fresh ? undefined : this.tokens.get(key);
    if (cached) return cached;

    const tls = realmUrl.host === ep.host ? ep.tls : undefined;
    let res: HttpResponse;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as Docker does with an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, service, client_id: 'berth', access_type: 'offline' });
      form.set('scope', scopes.join(' '));
      res = await send(
        { method: 'POST', url: realmUrl, tls, progressTimeoutMs: this.opts.progressTimeoutMs, body: form.toString(), headers: { ...ep.headers, 'Content-Type': 'application/x-www-form-urlencoded' } },
        this.agents,
      );
    } else {
      const u = new URL(realmUrl);
      if (service) u.searchParams.set('service', service);
      for (const s of scopes) u.searchParams.append('scope', s);
      // hosts.toml headers go to the token service too, as containerd's authorizer sends them.
      const headers: Record<string, string | string[]> = { ...ep.headers };
      if (creds?.username !== undefined) headers.Authorization = basicAuthorization(creds);
      res = await send({ method: 'GET', url: u, tls, progressTimeoutMs: this.opts.progressTimeoutMs, headers }, this.agents);
    }
    const body = await readSmallBody(res.body, Limits.tokenReplyBytes, `the token reply of ${realmUrl.host}`, res.headers['content-length']);
    if (res.status === 401 || res.status === 403) throw permissionDenied(`the token service of ${ep.host} refused the credentials (${res.status})`);
    if (res.status !== 200) throw unavailable(`the token service of ${ep.host} answered ${res.status}`);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw unavailable(`the token service of ${ep.host} did not answer JSON`);
    }
    const token = typeof doc.token === 'string' && doc.token ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : '';
    if (!token) throw unavailable(`the token service of ${ep.host} returned no token`);
    const expires = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    this.tokens.set(key, token, expires);
    return token;
  }

  /** @internal Runs `fn` with retries on retryable failures. */
  async withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.opts.attempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= attempts || !isRetryable(err)) throw err;
        const delay = (this.opts.backoffMs ?? 250) * 2 ** (attempt - 1);
        this.opts.logger.debug('registry request failed, retrying', { what, attempt, delayMs: delay, error: errorMessage(err) });
        await sleep(delay);
      }
    }
  }
}

/** Maps a non-success status to a typed error. */
function statusError(res: HttpResponse, what: string): BerthError {
  const s = res.status;
  res.body.resume();
  if (s === 404) return notFound(`${what}: not found`);
  if (s === 403) return permissionDenied(`${what}: access denied (403)`);
  if (s === 429) return resourceExhausted(`${what}: the registry is rate-limiting requests (429 Too Many Requests)`);
  if (s >= 500) return new RetryableStatus(`${what}: registry error ${s}`);
  return unavailable(`${what}: unexpected status ${s}`);
}

export class RegistrySession {
  /** Endpoints that refused connections during this session are skipped afterwards. */
  private readonly dead = new Set<RegistryEndpoint>();
  private readonly scope: string;

  constructor(
    private readonly client: RegistryClient,
    readonly ref: ImageReference,
    readonly endpoints: RegistryEndpoint[],
    private readonly creds: CredentialSource,
  ) {
    this.scope = `repository:${ref.path}:pull`;
  }

  /** Tries each endpoint with `cap` in order; the last error wins if all fail. */
  private async onEndpoints<T>(cap: Capability, what: string, fn: (ep: RegistryEndpoint) => Promise<T>): Promise<T> {
    const eps = this.endpoints.filter((e) => e.capabilities.has(cap));
    const live = eps.filter((e) => !this.dead.has(e));
    let lastErr: unknown = unavailable(`${what}: no registry endpoint with the "${cap}" capability`);
    for (const ep of live.length ? live : eps) {
      try {
        return await this.client.withRetries(`${what} from ${ep.host}`, () => fn(ep));
      } catch (err) {
        lastErr = err;
        if (isConnectionFailure(err) && ep !== eps[eps.length - 1]) this.dead.add(ep);
        // Authorization failures and bad content are answers, not outages - but a
        // mirror's answer does not bind the upstream, so keep going while endpoints remain.
        this.client.opts.logger.debug('registry endpoint failed', { what, host: ep.host, mirror: ep.mirror, error: errorMessage(err) });
      }
    }
    throw lastErr;
  }

  private fetchManifestFrom(ep: RegistryEndpoint, refOrDigest: string): Promise<FetchedManifest> {
    const what = `manifest ${formatReference(this.ref)}`;
    return (async () => {
      const res = await this.client.request(ep, this.creds.forHost(ep.host, ep.mirror), this.scope, 'GET', `${this.ref.path}/manifests/${refOrDigest}`, { Accept: MANIFEST_ACCEPT });
      if (res.status !== 200) throw statusError(res, `${what} at ${ep.host}`);
      const body = await readSmallBody(res.body, Limits.manifestBytes, `${what} at ${ep.host}`, res.headers['content-length']);
      const digest = sha256Digest(body);
      if (isSha256Digest(refOrDigest) && digest !== refOrDigest) {
        throw invalidArgument(`${what} from ${ep.host}: content digest ${digest} does not match the requested ${refOrDigest}`);
      }
      const mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
      return { digest, mediaType, body };
    })();
  }

  /** Resolves the reference (tag or digest) to its top-level manifest or index. */
  resolve(): Promise<FetchedManifest> {
    const target = this.ref.digest ?? this.ref.tag ?? 'latest';
    return this.onEndpoints(this.ref.digest ? 'pull' : 'resolve', `resolve ${formatReference(this.ref)}`, (ep) =>
      this.fetchManifestFrom(ep, target),
    );
  }

  /** Fetches a manifest by digest (an index entry). */
  fetchManifest(digest: string): Promise<FetchedManifest> {
    return this.onEndpoints('pull', `manifest ${digest}`, (ep) => this.fetchManifestFrom(ep, digest));
  }

  /**
   * Reads a small blob (the image config) fully, capped like a manifest: a
   * descriptor announcing more is refused before any request, and the
   * download stops at the descriptor's size (openBlob) and at the cap.
   */
  async fetchSmallBlob(desc: Descriptor, limit: number, what: string): Promise<Buffer> {
    if (desc.size > limit) throw invalidArgument(`${what} ${desc.digest} is ${desc.size} bytes, over the ${limit}-byte limit`);
    return readSmallBody(this.openBlob(desc), limit, `${what} ${desc.digest}`);
  }

  /** Opens one blob response, from `offset` on, on the first endpoint that has it. */
  private openBlobAt(desc: Descriptor, offset: number): Promise<{ res: HttpResponse; skip: number }> {
    return this.onEndpoints('pull', `blob ${desc.digest}`, async (ep) => {
      const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
      const res = await this.client.request(ep, this.creds.forHost(ep.host, ep.mirror), this.scope, 'GET', `${this.ref.path}/blobs/${desc.digest}`, headers);
      if (res.status === 206 && offset > 0) {
        const range = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
        if (range && Number(range[1]) === offset) return { res, skip: 0 };
        res.body.destroy();
        throw unavailable(`blob ${desc.digest} at ${ep.host}: unexpected Content-Range`);
      }
      // A 200 answers a range request with the whole blob: skip what we already have.
      if (res.status === 200) return { res, skip: offset };
      throw statusError(res, `blob ${desc.digest} at ${ep.host}`);
    });
  }

  /**
   * The blob's bytes as a stream with backpressure. Dropped connections are
   * retried with backoff, resuming from the last byte received. The stream
   * ends after exactly desc.size bytes or errors; the digest is checked by
   * the content store.
   */
  openBlob(desc: Descriptor): Readable {
    return Readable.from(this.blobChunks(desc), { objectMode: false });
  }

  private async *blobChunks(desc: Descriptor): AsyncGenerator<Buffer> {
    const attempts = this.client.opts.attempts ?? 4;
    const backoff = this.client.opts.backoffMs ?? 250;
    const logger = this.client.opts.logger;
    let received = 0;
    let failures = 0;
    for (;;) {
      let body: Readable | undefined;
      try {
        const { res, skip } = await this.openBlobAt(desc, received);
        body = res.body;
        let toSkip = skip;
        for await (const c of body) {
          let chunk = c as Buffer;
          if (toSkip > 0) {
            const n = Math.min(toSkip, chunk.length);
            toSkip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          received += chunk.length;
          if (received > desc.size) throw invalidArgument(`blob ${desc.digest} is larger than the ${desc.size} bytes its descriptor says`);
          failures = 0;
          yield chunk;
        }
        if (received < desc.size) throw unavailable(`blob ${desc.digest}: connection closed before the whole blob arrived (${received} of ${desc.size} bytes)`);
        return;
      } catch (err) {
        body?.destroy();
        failures++;
        const retryable = isRetryable(err) || (err instanceof BerthError && err.kind === 'UNAVAILABLE' && /closed before/.test(err.message));
        if (failures >= attempts || !retryable) {
          if (err instanceof BerthError) throw err;
          throw unavailable(`blob ${desc.digest}: download failed after ${failures} attempt(s) at byte ${received} of ${desc.size}: ${errorMessage(err)}`, err);
        }
        const delay = backoff * 2 ** (failures - 1);
        logger.info('blob download interrupted, resuming', { digest: desc.digest, received, of: desc.size, delayMs: delay, error: errorMessage(err) });
        await sleep(delay);
      }
    }
  }
}
