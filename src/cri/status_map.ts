// The one place errors become gRPC statuses. Anything that is not a
// BerthError is an internal fault: it is logged in full, and the caller gets
// a short message rather than a stack trace.
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

export function toServiceError(err: unknown): ServiceError {
  const code = err instanceof BerthError ? CODES[err.kind] : GrpcStatus.INTERNAL;
  const details = err instanceof BerthError ? err.message : `internal error: ${errorMessage(err)}`;
  const e = new Error(details) as ServiceError;
  e.code = code;
  e.details = details;
  e.metadata = new Metadata();
  return e;
}
