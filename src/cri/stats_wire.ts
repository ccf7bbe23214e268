// ListContainerStats replies written straight to the wire, container by
// container. The kubelet asks for every running container every 10 s; the
// generic path (src/proto.ts: fromObject, which parses every uint64 string
// into a Long, then encode) costs a few times more and runs in one piece
// inside the server's serializer, holding the event loop for the whole node.
// Here each container's fixed part (ContainerAttributes: id, metadata,
// labels, annotations) is encoded once per record, its figures are written
// field by field, and the handler yields between containers; the reply is
// the concatenation of the entries (encoded_reply.ts). The bytes are those
// of the generic path (test/cri/stats_wire.test.ts compares them).
import type { ContainerRecord } from '../container/record';
import type { ContainerAttributes } from '../gen/runtime/v1/ContainerAttributes';
import type { ContainerStats } from '../gen/runtime/v1/ContainerStats';
import type { CpuUsage } from '../gen/runtime/v1/CpuUsage';
import type { FilesystemUsage } from '../gen/runtime/v1/FilesystemUsage';
import type { MemoryUsage } from '../gen/runtime/v1/MemoryUsage';
import type { UInt64Value } from '../gen/runtime/v1/UInt64Value';
import { loadCri } from '../proto';
import type { Long } from '@grpc/proto-loader';

const LEN = 2;
const VARINT = 0;

/**
 * A protobuf writer for the few shapes below, into one growing Buffer. A
 * sub-message reserves one byte for its length and moves its body when the
 * length needs more (rare: these bodies are mostly under 128 bytes).
 */
class Wire {
  private buf = Buffer.allocUnsafe(512);
  private at = 0;

  bytes(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }

  private byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }

  varint(n: number): void {
    this.room(10);
    while (n >= 0x80) {
      this.buf[this.at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.at++] = n;
  }

  /** A uint64 or non-negative int64 given as a decimal string (as the CRI types carry them). */
  varintDecimal(s: string): void {
    if (s.length <= 15 && s[0] !== '-') return this.varint(Number(s)); // below 2^53: exact as a number
    this.room(10);
    let v = BigInt.asUintN(64, BigInt(s));
    while (v >= 0x80n) {
      this.buf[this.at++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.at++] = Number(v);
  }

  tag(field: number, wireType: number): void {
    this.byte((field << 3) | wireType);
  }

  raw(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.at);
    this.at += b.length;
  }

  /** A length-delimited field whose body `write` produces. */
  message(field: number, write: () => void): void {
    this.tag(field, LEN);
    this.byte(0);
    const from = this.at;
    write();
    const len = this.at - from;
    if (len < 0x80) {
      this.buf[from - 1] = len;
      return;
    }
    // The length takes more than its reserved byte: move the body up.
    let extra = 0;
    for (let n = len; n >= 0x80; n = Math.floor(n / 0x80)) extra++;
    this.room(extra);
    this.buf.copyWithin(from + extra, from, this.at);
    this.at = from - 1;
    this.varint(len);
    this.at += len;
  }

  /** A zero (proto3's default) is left out, as the generic encoder leaves it out. */
  int64(field: number, s: string | number | Long | undefined | null): void {
    if (s === undefined || s === null) return;
    const text = String(s);
    if (text === '0') return;
    this.tag(field, VARINT);
    this.varintDecimal(text);
  }

  uint64Value(field: number, v: UInt64Value | null | undefined): void {
    if (!v) return;
    this.message(field, () => this.int64(1, v.value));
  }

  string(field: number, s: string | undefined | null): void {
    if (s === undefined || s === null) return;
    this.tag(field, LEN);
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.room(n);
    this.at += this.buf.write(s, this.at, 'utf8');
  }
}

function writeCpu(w: Wire, c: CpuUsage): void {
  w.int64(1, c.timestamp);
  w.uint64Value(2, c.usageCoreNanoSeconds);
  w.uint64Value(3, c.usageNanoCores);
}

function writeMemory(w: Wire, m: MemoryUsage): void {
  w.int64(1, m.timestamp);
  w.uint64Value(2, m.workingSetBytes);
  w.uint64Value(3, m.availableBytes);
  w.uint64Value(4, m.usageBytes);
  w.uint64Value(5, m.rssBytes);
  w.uint64Value(6, m.pageFaults);
  w.uint64Value(7, m.majorPageFaults);
}

function writeFilesystem(w: Wire, f: FilesystemUsage): void {
  w.int64(1, f.timestamp);
  const fsId = f.fsId;
  if (fsId) w.message(2, () => w.string(1, fsId.mountpoint));
  w.uint64Value(3, f.usedBytes);
  w.uint64Value(4, f.inodesUsed);
}

/** ContainerStats field 1 (attributes), as the generic encoder writes it, per record: fixed for a record's life. */
const attributeFields = new WeakMap<ContainerRecord, Buffer>();

function attributesField(rec: ContainerRecord, attributes: ContainerAttributes): Buffer {
  let b = attributeFields.get(rec);
  if (!b) {
    // A one-entry reply with attributes alone: stats tag, entry length, then the attributes field.
    const one = loadCri().runtime.v1.RuntimeService.service.ListContainerStats.responseSerialize({ stats: [{ attributes }] });
    let at = 1;
    while (one[at] & 0x80) at++;
    b = one.subarray(at + 1);
    attributeFields.set(rec, b);
  }
  return b;
}

/**
 * One ListContainerStatsResponse entry (field 1 of the reply) for a
 * container: its attributes are those of `rec` (the cached encoding), the
 * figures are `stats`'s (CPU, memory and writable layer: what berth fills).
 */
export function containerStatsEntry(rec: ContainerRecord, stats: ContainerStats): Buffer {
  const w = new Wire();
  const { attributes, cpu, memory, writableLayer } = stats;
  w.message(1, () => {
    if (attributes) w.raw(attributesField(rec, attributes));
    if (cpu) w.message(2, () => writeCpu(w, cpu));
    if (memory) w.message(3, () => writeMemory(w, memory));
    if (writableLayer) w.message(4, () => writeFilesystem(w, writableLayer));
  });
  return w.bytes();
}
