// Image references, parsed and normalised the way containerd and the kubelet
// do (distribution/reference's "familiar" names):
//   busybox                       -> docker.io/library/busybox:latest
//   quay.io/x/y:1@sha256:...      -> quay.io/x/y@sha256:...  (a digest wins over a tag)
//   localhost:5000/app            -> localhost:5000/app:latest
import { invalidArgument } from '../errors';
import { digestProblem, isSha256Hex } from './digest';

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const MAX_NAME_LENGTH = 255;

// One path component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// A domain: dot-separated DNS labels (or a bracketed IPv6 address), optional port.
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:.]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/**
 * Why a registry host[:port] is not one, or undefined. Beyond the grammar it
 * must be something a URL can name (a port up to 65535, a real IPv6 address):
 * the registry client builds URLs from it, and a reference it cannot use is
 * the caller's mistake, not an internal fault.
 */
function domainProblem(domain: string): string | undefined {
  if (!DOMAIN.test(domain)) return `"${domain}" is not a valid registry host`;
  const port = /\]?:([0-9]+)$/.exec(domain);
  if (port && Number(port[1]) > 65535) return `port ${port[1]} of "${domain}" is not a valid port (at most 65535)`;
  try {
    new URL(`https://${domain}/`);
  } catch {
    return `"${domain}" is not a valid registry host (not a host or IP address a URL can name)`;
  }
  return undefined;
}

export interface ImageReference {
  /** Registry host, with port if any: "docker.io", "localhost:5000". */
  readonly domain: string;
  /** Repository path inside the registry: "library/busybox". */
  readonly path: string;
  /** The tag; absent when a digest is given (containerd drops the tag then). */
  readonly tag?: string;
  /** "sha256:<64 hex>". */
  readonly digest?: string;
}

/** "docker.io/library/busybox". */
export function repositoryName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The canonical string: name:tag or name@digest. */
export function formatReference(ref: ImageReference): string {
  if (ref.digest) return `${repositoryName(ref)}@${ref.digest}`;
  return `${repositoryName(ref)}:${ref.tag ?? 'latest'}`;
}

/**
 * Parses and normalises a reference. Throws invalidArgument saying what is
 * wrong. A reference with neither tag nor digest gets ":latest"; one with both
 * keeps only the digest, which is what is actually pulled.
 */
export function parseReference(input: string): ImageReference {
  const bad = (why: string) => invalidArgument(`invalid image reference "${input}": ${why}`);
  if (typeof input !== 'string' || input.length === 0) throw bad('it is empty');
  if (input !== input.trim() || /\s/.test(input)) throw bad('it contains whitespace');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) throw bad(problem);
  }

  let tag: string | undefined;
  // A tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`"${tag}" is not a valid tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`);
  }
  if (rest.length === 0) throw bad('the repository name is empty');

  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  // Like distribution: the first component is a registry host only if it looks like one.
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
    const problem = domainProblem(domain);
    if (problem) throw bad(problem);
  } else {
    domain = DEFAULT_DOMAIN;
    path = rest;
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path.length === 0) throw bad('the repository path is empty');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      if (component !== component.toLowerCase()) throw bad('repository names must be lowercase');
      throw bad(`"${component}" is not a valid repository path component`);
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;
  if (domain === DEFAULT_DOMAIN && isSha256Hex(path.slice(OFFICIAL_REPO_PREFIX.length)) && !tag && !digest && !input.includes('/')) {
    throw bad('a 64-hex-digit string is an image ID, not a repository name');
  }
  if (domain.length + 1 + path.length > MAX_NAME_LENGTH) throw bad(`the name is longer than ${MAX_NAME_LENGTH} characters`);

  if (digest) return { domain, path, digest };
  return { domain, path, tag: tag ?? 'latest' };
}

/** parseReference + formatReference: the normalised string of a reference. */
export function normalizeReference(input: string): string {
  return formatReference(parseReference(input));
}
