// Layer identities of the OCI image spec: a layer's diff ID is the digest of
// its uncompressed tar; a chain ID names a layer together with everything
// below it, and is what committed layer snapshots are keyed by.
import { sha256Digest } from './digest';

/** chainId(L0) = diffId(L0); chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256Digest(`${prev} ${d}`));
  }
  return out;
}
