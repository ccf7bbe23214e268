// What the image service needs from the snapshotter (src/snapshotter), as a
// structural type so this module does not depend on its implementation, and
// OCI chain IDs, which name committed layer snapshots.
import { createHash } from 'node:crypto';

export interface LayerSnapshotter {
  hasCommitted(chainId: string): boolean;
  applyLayer(opts: {
    chainId: string;
    parentChainId?: string;
    diffId: string;
    mediaType: string;
    stream: NodeJS.ReadableStream;
  }): Promise<void>;
  /** Refuses (failedPrecondition) a committed snapshot that still has children. */
  remove(key: string): Promise<void>;
  usage(): Promise<{ bytes: bigint; inodes: bigint; mountpoint: string }>;
  list(): Promise<Array<{ key: string; kind: string; parent?: string }>>;
}

/** chainId(L0) = diffId(L0); chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}
