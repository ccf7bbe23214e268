// Single-use, short-lived tokens naming a pending streaming request. The CRI
// call stores the request and hands out a URL with the token; the HTTP
// request consumes it. Like the kubelet's request cache, a bounded number may
// be in flight so a caller cannot grow it without limit.
import { randomBytes } from 'node:crypto';
import { resourceExhausted } from '../errors';

export const MAX_IN_FLIGHT = 1000;
const TOKEN_BYTES = 16;

interface Entry<T> {
  value: T;
  expiresAt: number;
}

export class TokenCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.ttlMs = ttlMs;
    this.now = now;
  }

  get size(): number {
    return this.entries.size;
  }

  insert(value: T): string {
    this.sweep();
    if (this.entries.size >= MAX_IN_FLIGHT)
      throw resourceExhausted(`too many pending streaming requests (${MAX_IN_FLIGHT}); retry shortly`);
    let token: string;
    do token = randomBytes(TOKEN_BYTES).toString('base64url');
    while (this.entries.has(token));
    this.entries.set(token, { value, expiresAt: this.now() + this.ttlMs });
    return token;
  }

  /** Removes and returns the request, or undefined if unknown, used or expired. */
  consume(token: string): T | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    this.entries.delete(token);
    return entry.expiresAt > this.now() ? entry.value : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [token, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(token);
  }
}
