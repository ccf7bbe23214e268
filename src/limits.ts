// Bounds on everything berthd reads from outside (registries, image layers,
// archives, streaming clients). Each is enforced while the input streams in,
// before more than the bound is held or parsed, and exceeding one is a clear
// error naming the limit. The README's "Limits" table lists them next to
// containerd's and CRI-O's; test/limits/limits.test.ts checks the two agree.

const KiB = 1024;
const MiB = 1024 * KiB;

export const Limits = {
  /** One PAX ('x'/'g') header's data; Go's archive/tar (containerd) refuses more than 1 MiB too. */
  tarPaxHeaderBytes: 1 * MiB,
  /** One GNU long name or long link name ('L'/'K'); PATH_MAX is 4 KiB, so this is generous. */
  tarLongNameBytes: 64 * KiB,
  /**
   * All extended-header bytes of one layer together (PAX global and per-entry,
   * GNU long names and links). Parsing is linear in them, but they carry no
   * file data, so a layer made mostly of metadata is refused early.
   */
  tarMetadataBytesPerLayer: 64 * MiB,
  /** What the merged PAX global headers may hold at once (they apply to every later entry). */
  tarGlobalPaxBytes: 64 * KiB,
  /** Entries of one layer (a large distro layer has ~100k). */
  tarEntriesPerLayer: 1_000_000,
  /** xattrs on one entry (ext4 keeps all of an inode's xattrs in one 4 KiB block). */
  tarXattrsPerEntry: 128,
  /** xattrs written per layer: each costs a process (setfattr), so their number is capped. */
  tarXattrsWrittenPerLayer: 4096,
  /** Manifests and indexes; containerd's MaxManifestSize is 4*1048*1048 = 4,393,216 bytes. */
  manifestBytes: 4 * MiB,
  /** Image configs: read whole and parsed like manifests, through the same capped path. */
  imageConfigBytes: 4 * MiB,
  /** A registry token service's reply. */
  tokenReplyBytes: 1 * MiB,
  /** One hosts.toml file. */
  hostsTomlBytes: 256 * KiB,
  /** A CA certificate, client certificate or key named by hosts.toml. */
  hostsCertBytes: 1 * MiB,
  /** JSON documents of an image archive held in memory, together (each is also under manifestBytes). */
  archiveDocumentBytes: 32 * MiB,
  /** Entries of an image archive. */
  archiveEntries: 100_000,
  /**
   * ExecSync output kept per stream. Both streams travel in one reply, and the
   * kubelet (and berthd's own server) refuse messages over 16 MiB, so each gets
   * a bit under half; more is cut and a marker appended, never an error.
   */
  execSyncStreamBytes: 8 * MiB - 64 * KiB,
  /** A SPDY header block, inflated (kubectl's are well under 1 KiB). */
  spdyHeaderBlockBytes: 64 * KiB,
  /** SPDY streams open at once in one session (a port-forward uses two per connection). */
  spdyStreamsPerSession: 512,
  /**
   * How long a streaming session's output may stay queued because the peer
   * reads nothing before the session is dropped and its processes killed.
   */
  streamingWriteStallSeconds: 120,
  /**
   * One WebSocket message (all its fragments) from a streaming client; a
   * bigger one is closed with 1009. The kubelet's wsstream (x/net/websocket)
   * allows 32 MiB too; k8s channel messages are far smaller.
   */
  websocketMessageBytes: 32 * MiB,
  /** Port-forward connections open at once in one session, and in the whole daemon. */
  portForwardsPerSession: 128,
  portForwardsPerDaemon: 1024,
} as const;

export type LimitName = keyof typeof Limits;

/** The marker appended to ExecSync output that was cut at `cap` bytes. */
export function truncationMarker(cap: number): Buffer {
  return Buffer.from(`\n[berth: output truncated after ${cap} bytes]\n`);
}
