// Typed errors. Every module throws one of these; the CRI layer maps them to a
// gRPC status in exactly one place (cri/status_map.ts). Messages are meant for
// the person reading crictl's output: say what was wrong and what to do.

export type ErrorKind =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'UNIMPLEMENTED'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'RESOURCE_EXHAUSTED'
  | 'PERMISSION_DENIED'
  | 'ABORTED'
  | 'INTERNAL';

export class BerthError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'BerthError';
  }
}

export const invalidArgument = (msg: string, cause?: unknown): BerthError =>
  new BerthError('INVALID_ARGUMENT', msg, { cause });
export const notFound = (msg: string, cause?: unknown): BerthError => new BerthError('NOT_FOUND', msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown): BerthError =>
  new BerthError('ALREADY_EXISTS', msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown): BerthError =>
  new BerthError('FAILED_PRECONDITION', msg, { cause });
export const unimplemented = (msg: string): BerthError => new BerthError('UNIMPLEMENTED', msg);
export const unavailable = (msg: string, cause?: unknown): BerthError => new BerthError('UNAVAILABLE', msg, { cause });
export const deadlineExceeded = (msg: string, cause?: unknown): BerthError =>
  new BerthError('DEADLINE_EXCEEDED', msg, { cause });
export const resourceExhausted = (msg: string, cause?: unknown): BerthError =>
  new BerthError('RESOURCE_EXHAUSTED', msg, { cause });
export const internal = (msg: string, cause?: unknown): BerthError => new BerthError('INTERNAL', msg, { cause });
export const aborted = (msg: string, cause?: unknown): BerthError => new BerthError('ABORTED', msg, { cause });

/** Whether `err` says its operation was given up by whoever asked for it (a pull whose client went away). */
export function isAborted(err: unknown): boolean {
  return err instanceof BerthError && err.kind === 'ABORTED';
}

/**
 * `err` with what was being done put in front of its message ("what: ..."),
 * keeping its kind so the caller's status stays right; anything not a
 * BerthError becomes INTERNAL. The original is the cause.
 */
export function wrapError(what: string, err: unknown): BerthError {
  const kind: ErrorKind = err instanceof BerthError ? err.kind : 'INTERNAL';
  return new BerthError(kind, `${what}: ${errorMessage(err)}`, { cause: err });
}

/** The message of anything thrown, for logs and wrapped errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node system errors carry a `code` such as ENOENT. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
