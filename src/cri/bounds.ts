// Upper bounds on the identifiers, names, references and paths a CRI request
// carries, checked by the server for every RPC before its handler runs. Such
// values end up in error messages, logs, file names and cgroup paths; an
// unbounded one can overflow a gRPC header or a path component (NAME_MAX 255)
// and leave state nothing can remove. The bounds follow Kubernetes:
//   ids                 64: berth's ids are 64 hex characters (a client may send a unique prefix, never more)
//   metadata.name      253: a DNS-1123 subdomain (pod and container names)
//   metadata.namespace  63: a DNS-1123 label
//   metadata.uid       128: a UUID is 36; a static pod's is a 32-hex hash. `pod<uid>` stays a valid path component
//   runtime_handler     63: a RuntimeClass handler is a DNS-1123 label
//   image references  4096: distribution allows a 255-character name + 128-character tag + a digest; the rest is slack
//   paths             4096: PATH_MAX (log directory and path, cgroup parent, mount and device paths, profiles)
//   pod_cidr           128: a dual-stack pair of CIDRs is at most ~90 characters
import { invalidArgument } from '../errors';

/** Bytes, by kind of value (see above). */
const LIMIT = { id: 64, name: 253, namespace: 63, uid: 128, handler: 63, imageRef: 4096, path: 4096, cidr: 128 } as const;

/** Bounds by field name (as decoded: camelCase), wherever the field appears in a request. */
const FIELD_BOUNDS: Record<string, number> = {
  containerId: LIMIT.id,
  podSandboxId: LIMIT.id,
  targetId: LIMIT.id,
  runtimeHandler: LIMIT.handler,
  image: LIMIT.imageRef,
  userSpecifiedImage: LIMIT.imageRef,
  logDirectory: LIMIT.path,
  logPath: LIMIT.path,
  cgroupParent: LIMIT.path,
  containerPath: LIMIT.path,
  hostPath: LIMIT.path,
  seccompProfilePath: LIMIT.path,
  localhostRef: LIMIT.path,
  podCidr: LIMIT.cidr,
};

/** Bounds of fields that mean something else elsewhere, by "<parent>.<field>". */
const NESTED_BOUNDS: Record<string, number> = {
  // Filters name an object by id.
  'filter.id': LIMIT.id,
  'metadata.name': LIMIT.name,
  'metadata.namespace': LIMIT.namespace,
  'metadata.uid': LIMIT.uid,
};

function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Throws INVALID_ARGUMENT naming the first field over its bound (the value is
 * not echoed: it is what is too long). Walks the decoded request, so a field
 * is bounded in every RPC that carries it.
 */
export function checkRequestBounds(rpc: string, request: unknown): void {
  // The path to the field is built only for the error: every RPC is checked, few fail.
  const trail: Array<string | number> = [];
  const fieldName = (): string =>
    trail.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${snakeCase(k)}` : snakeCase(k)), '');
  walk(request, '');
  function walk(value: unknown, parent: string): void {
    if (typeof value !== 'object' || value === null || Buffer.isBuffer(value)) return;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        trail.push(i);
        walk(value[i], parent);
        trail.pop();
      }
      return;
    }
    for (const key of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[key];
      trail.push(key);
      if (typeof v === 'string') {
        const bound = NESTED_BOUNDS[`${parent}.${key}`] ?? FIELD_BOUNDS[key];
        const bytes = bound === undefined ? 0 : Buffer.byteLength(v);
        if (bound !== undefined && bytes > bound) {
          throw invalidArgument(`${rpc}: ${fieldName()} is ${bytes} bytes long; at most ${bound} are allowed`);
        }
      } else {
        walk(v, key);
      }
      trail.pop();
    }
  }
}
