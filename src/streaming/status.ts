// The Kubernetes metav1.Status documents the kubelet writes on the error
// stream (protocol v4 and later), byte for byte as Go's encoding/json renders
// them: field order and omitted empty fields matter to strict clients.

export interface StatusCause {
  reason?: string;
  message?: string;
}

export interface K8sStatus {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: StatusCause[] };
  code?: number;
}

export function successStatus(): K8sStatus {
  return { metadata: {}, status: 'Success' };
}

/** What the kubelet sends for a command that exited non-zero. */
export function exitCodeStatus(cmd: readonly string[], exitCode: number): K8sStatus {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${cmd.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/** apierrors.NewInternalError(err).Status(). */
export function internalErrorStatus(message: string): K8sStatus {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** v4 and later: the JSON document. */
export function encodeStatusV4(status: K8sStatus): Buffer {
  return Buffer.from(JSON.stringify(status), 'utf8');
}

/** v1-v3: nothing on success, the bare message on failure. */
export function encodeStatusV1(status: K8sStatus): Buffer {
  return status.status === 'Success' ? Buffer.alloc(0) : Buffer.from(status.message ?? 'unknown error', 'utf8');
}
