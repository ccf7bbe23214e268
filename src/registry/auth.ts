// Registry authentication: credentials (from the CRI request or the config),
// WWW-Authenticate challenges, and Bearer tokens cached until they expire.
// Secrets never leave this module except inside an Authorization header; the
// Credentials type has no toString-able secret fields in error messages.
import { createHash } from 'node:crypto';
import type { RegistryCredentialConfig } from '../config/config';
import { DEFAULT_DOMAIN } from '../oci/reference';

export interface Credentials {
  username?: string;
  password?: string;
  /** Refresh token exchanged at the token endpoint (Docker's identitytoken). */
  identityToken?: string;
  /** Bearer token sent as is. */
  registryToken?: string;
}

export interface CriAuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

function decodeAuth(auth: string): { username: string; password: string } | undefined {
  const s = Buffer.from(auth, 'base64').toString('utf8');
  const i = s.indexOf(':');
  if (i <= 0) return undefined;
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

function fromFields(f: {
  username?: string;
  password?: string;
  auth?: string;
  identityToken?: string;
  registryToken?: string;
}): Credentials | undefined {
  const c: Credentials = {};
  if (f.username) {
    c.username = f.username;
    c.password = f.password ?? '';
  } else if (f.auth) {
    const d = decodeAuth(f.auth);
    if (d) Object.assign(c, d);
  }
  if (f.identityToken) c.identityToken = f.identityToken;
  if (f.registryToken) c.registryToken = f.registryToken;
  return Object.keys(c).length ? c : undefined;
}

/** "https://index.docker.io/v1/" -> "docker.io"; "host:5000/path" -> "host:5000". */
export function normalizeServerAddress(addr: string): string {
  let s = addr.trim().replace(/^[a-z]+:\/\//i, '');
  s = s.split('/')[0];
  if (s === 'index.docker.io' || s === 'registry-1.docker.io') return DEFAULT_DOMAIN;
  return s;
}

/**
 * Where credentials for one pull come from. `domain` is the image's registry;
 * `host` the endpoint actually contacted (a mirror's own credentials come from
 * the config only).
 */
export class CredentialSource {
  constructor(
    private readonly configured: Record<string, RegistryCredentialConfig>,
    private readonly domain: string,
    private readonly request?: CriAuthConfig,
  ) {}

  forHost(host: string, isMirror: boolean): Credentials | undefined {
    const req = this.request;
    if (req) {
      const target = req.serverAddress ? normalizeServerAddress(req.serverAddress) : undefined;
      const applies = target ? target === normalizeServerAddress(host) || (!isMirror && target === this.domain) : !isMirror;
      if (applies) {
        const c = fromFields(req);
        if (c) return c;
      }
    }
    for (const key of [host, ...(isMirror ? [] : [this.domain])]) {
      for (const [name, entry] of Object.entries(this.configured)) {
        if (normalizeServerAddress(name) !== normalizeServerAddress(key)) continue;
        const c = fromFields({
          username: entry.username,
          password: entry.password,
          auth: entry.auth,
          identityToken: entry.identity_token,
          registryToken: entry.registry_token,
        });
        if (c) return c;
      }
    }
    return undefined;
  }
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses WWW-Authenticate: `Bearer realm="https://x/token",service="reg",scope="..."`, possibly several. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (!header) return [];
  const out: Challenge[] = [];
  for (const h of Array.isArray(header) ? header : [header]) {
    let i = 0;
    const skip = (chars: string) => {
      while (i < h.length && chars.includes(h[i])) i++;
    };
    const token = () => {
      const m = /^[A-Za-z0-9_.~+/-]+/.exec(h.slice(i));
      if (!m) return '';
      i += m[0].length;
      return m[0];
    };
    while (i < h.length) {
      skip(' \t,');
      const scheme = token();
      if (!scheme) break;
      const params: Record<string, string> = {};
      for (;;) {
        skip(' \t');
        const save = i;
        const name = token();
        skip(' \t');
        if (!name || h[i] !== '=') {
          i = save;
          break;
        }
        i++;
        skip(' \t');
        let value = '';
        if (h[i] === '"') {
          i++;
          while (i < h.length && h[i] !== '"') {
            if (h[i] === '\\' && i + 1 < h.length) i++;
            value += h[i++];
          }
          i++;
        } else {
          while (i < h.length && h[i] !== ',' && h[i] !== ' ') value += h[i++];
        }
        params[name.toLowerCase()] = value;
        skip(' \t');
        if (h[i] === ',') i++;
      }
      out.push({ scheme: scheme.toLowerCase(), params });
    }
  }
  return out;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens by realm+service+scope+identity; shared by all pulls. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();

  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    if (Date.now() >= t.expiresAt) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  set(key: string, token: string, expiresInSeconds: number): void {
    // Renew a little early so a token does not expire mid-request.
    const lifetime = Math.max(1, expiresInSeconds - Math.min(10, expiresInSeconds / 10));
    this.tokens.set(key, { token, expiresAt: Date.now() + lifetime * 1000 });
  }
}

export function basicAuthorization(c: Credentials): string {
  return 'Basic ' + Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64');
}

/** A key naming the identity without carrying the secret itself in clear. */
export function identityKey(c: Credentials | undefined): string {
  if (!c) return 'anonymous';
  return createHash('sha256')
    .update(JSON.stringify([c.username ?? '', c.password ?? '', c.identityToken ?? '', c.registryToken ?? '']))
    .digest('hex')
    .slice(0, 16);
}
