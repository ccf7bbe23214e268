// What the image service needs from the snapshotter (src/snapshotter), as a
// structural type so this module does not depend on its implementation.
// Committed layer snapshots are named by chain ID (src/oci/chain_id.ts).

export interface LayerSnapshotter {
  hasCommitted(chainId: string): boolean;
  applyLayer(opts: {
    chainId: string;
    parentChainId?: string;
    diffId: string;
    mediaType: string;
    stream: NodeJS.ReadableStream;
    /** Settles once the parent is committed: the layer unpacks at once and commits after it. */
    parentReady?: Promise<unknown>;
  }): Promise<void>;
  /** Whether a layer is being applied now; applyLayer joins such an apply rather than repeating it. */
  isApplying(chainId: string): boolean;
  /** Refuses (failedPrecondition) a committed snapshot that still has children. */
  remove(key: string): Promise<void>;
  usage(): Promise<{ bytes: bigint; inodes: bigint; mountpoint: string }>;
  list(): Promise<Array<{ key: string; kind: string; parent?: string }>>;
}
