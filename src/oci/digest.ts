// Content digests ("sha256:<64 hex>"): the one place that knows their shape.
// Only sha256 is supported, as in containerd's default configuration; the
// general OCI grammar is kept only to tell "not a digest" from "another
// algorithm" in error messages.
import { createHash } from 'node:crypto';
import { invalidArgument } from '../errors';

const PREFIX = 'sha256:';

/** 64 lowercase hex digits: a sha256 in hex; also the form of berth's container and pod ids. */
export const SHA256_HEX = /^[a-f0-9]{64}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
/** 1 to 64 hex digits: what may abbreviate an id. */
const HEX_PREFIX = /^[a-f0-9]{1,64}$/;
/** The OCI image-spec digest grammar, algorithm:encoded, of any algorithm. */
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

export function isSha256Hex(s: string): boolean {
  return SHA256_HEX.test(s);
}

export function isSha256Digest(s: string): boolean {
  return SHA256_DIGEST.test(s);
}

/** Whether `s` could abbreviate an id's hex ("sha256:" already removed). */
export function isHexPrefix(s: string): boolean {
  return HEX_PREFIX.test(s);
}

/** Why `s` is not a usable digest, or undefined if it is one. */
export function digestProblem(s: string): string | undefined {
  if (!ANY_DIGEST.test(s)) return `"${s}" is not a digest (expected sha256:<64 hex digits>)`;
  if (!s.startsWith(PREFIX)) return `digest algorithm "${s.split(':')[0]}" is not supported, only sha256`;
  if (!SHA256_DIGEST.test(s)) return `"${s}" is not a sha256 digest (64 lowercase hex digits)`;
  return undefined;
}

/** "sha256:<hex>" from the hex of a sha256. */
export function digestOfHex(hex: string): string {
  return PREFIX + hex;
}

/** The digest of `data`. */
export function sha256Digest(data: Buffer | string): string {
  return digestOfHex(createHash('sha256').update(data).digest('hex'));
}

/** The hex part of a sha256 digest; invalidArgument if `digest` is not one. */
export function hexOf(digest: string): string {
  if (!isSha256Digest(digest)) throw invalidArgument(`"${digest}" is not a sha256 digest`);
  return digest.slice(PREFIX.length);
}

/** `s` without a leading "sha256:", for ids given either way. */
export function stripAlgorithm(s: string): string {
  return s.startsWith(PREFIX) ? s.slice(PREFIX.length) : s;
}
