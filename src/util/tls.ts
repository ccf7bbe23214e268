// A certificate and key pair named by two config keys that must be set
// together (streaming.tls_*, metrics.tls_*): read once at start-up.
import * as fs from 'node:fs';
import { errorMessage, invalidArgument } from '../errors';

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Undefined when neither is set; INVALID_ARGUMENT naming `section` when one is missing or unreadable. */
export function readTlsPair(section: string, certFile: string, keyFile: string): TlsPair | undefined {
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw invalidArgument(`${section}.tls_cert_file and ${section}.tls_key_file must be set together`);
  }
  if (!certFile) return undefined;
  try {
    return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
  } catch (err) {
    throw invalidArgument(`${section} TLS: ${errorMessage(err)}`);
  }
}
