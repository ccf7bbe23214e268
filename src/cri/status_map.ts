// The one place errors become gRPC statuses. Anything that is not a
// BerthError is an internal fault: it is logged in full, and the caller gets
// a short message rather than a stack trace. Every message is capped and
// cleaned here: it travels as the grpc-message header, and one longer than
// the peer's header limit stalls the whole HTTP/2 connection, not just the call.
import { status as GrpcStatus, type ServiceError, Metadata } from '@grpc/grpc-js';
import { BerthError, errorMessage, type ErrorKind } from '../errors';

const CODES: Record<ErrorKind, GrpcStatus> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  UNIMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  ABORTED: GrpcStatus.ABORTED,
  INTERNAL: GrpcStatus.INTERNAL,
};

/** go-grpc-prometheus spells codes as Go's codes.Code.String() does. */
const CODE_NAMES: Record<number, string> = {
  0: 'OK',
  1: 'Canceled',
  2: 'Unknown',
  3: 'InvalidArgument',
  4: 'DeadlineExceeded',
  5: 'NotFound',
  6: 'AlreadyExists',
  7: 'PermissionDenied',
  8: 'ResourceExhausted',
  9: 'FailedPrecondition',
  10: 'Aborted',
  11: 'OutOfRange',
  12: 'Unimplemented',
  13: 'Internal',
  14: 'Unavailable',
  15: 'DataLoss',
  16: 'Unauthenticated',
};

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

/**
 * Bytes of a status message. grpc-js percent-encodes non-ASCII bytes, so the
 * header is at most 3x this (~3 KiB), well under the 8-16 KiB header lists
 * gRPC peers accept.
 */
export const MAX_STATUS_MESSAGE_BYTES = 1024;

/**
 * `text` made safe to echo in a status or a log line: control characters
 * other than tab and newline become spaces (no terminal escapes from request
 * data) and at most `maxBytes`
 * of UTF-8 are kept, cut on a character boundary, with the cut said.
 */
export function clipText(text: string, maxBytes: number): string {
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, ' ');
  const bytes = Buffer.from(clean, 'utf8');
  if (bytes.length <= maxBytes) return clean;
  const marker = ` ... (cut from ${bytes.length} bytes)`;
  let end = Math.max(0, maxBytes - Buffer.byteLength(marker));
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8') + marker;
}

export function toServiceError(err: unknown): ServiceError {
  const code = err instanceof BerthError ? CODES[err.kind] : GrpcStatus.INTERNAL;
  const raw = err instanceof BerthError ? err.message : `internal error: ${errorMessage(err)}`;
  const details = clipText(raw, MAX_STATUS_MESSAGE_BYTES);
  const e = new Error(details) as ServiceError;
  e.code = code;
  e.details = details;
  e.metadata = new Metadata();
  return e;
}
