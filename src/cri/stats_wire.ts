// ListContainerStats replies written straight to the wire, container by
// container. The kubelet asks for every running container every 10 s; the
// generic path (proto-loader: fromObject, which parses every uint64 string
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

/** A protobuf writer for the few shapes below: bytes collected as numbers, one Buffer at the end. */
class Wire {
  readonly bytes: number[] = [];

  varint(n: number): void {
    while (n >= 0x80) {
      this.bytes.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.bytes.push(n);
  }

  /** A uint64 or non-negative int64 given as a decimal string (as the CRI types carry them). */
  varintDecimal(s: string): void {
    if (s.length <= 15 && s[0] !== '-') return this.varint(Number(s)); // below 2^53: exact as a number
    let v = BigInt.asUintN(64, BigInt(s));
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  tag(field: number, wireType: number): void {
    this.bytes.push((field << 3) | wireType);
  }

  /** A length-delimited field whose body `write` produces. */
  message(field: number, write: (w: Wire) => void): void {
    const body = new Wire();
    write(body);
    this.tag(field, LEN);
    this.varint(body.bytes.length);
    for (const b of body.bytes) this.bytes.push(b);
  }

  /** Fields present on the object are written, zero included, as protobufjs does. */
  int64(field: number, s: string | number | Long | undefined | null): void {
    if (s === undefined || s === null) return;
    this.tag(field, VARINT);
    this.varintDecimal(String(s));
  }

  uint64Value(field: number, v: UInt64Value | null | undefined): void {
    if (!v) return;
    this.message(field, (w) => w.int64(1, v.value));
  }

  string(field: number, s: string | undefined | null): void {
    if (s === undefined || s === null) return;
    const b = Buffer.from(s, 'utf8');
    this.tag(field, LEN);
    this.varint(b.length);
    for (const x of b) this.bytes.push(x);
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
  if (fsId) w.message(2, (x) => x.string(1, fsId.mountpoint));
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

const NO_BYTES = Buffer.alloc(0);

/**
 * One ListContainerStatsResponse entry (field 1 of the reply) for a
 * container: its attributes are those of `rec` (the cached encoding), the
 * figures are `stats`'s (CPU, memory and writable layer: what berth fills).
 */
export function containerStatsEntry(rec: ContainerRecord, stats: ContainerStats): Buffer {
  const attributes = stats.attributes ? attributesField(rec, stats.attributes) : NO_BYTES;
  const figures = new Wire();
  const { cpu, memory, writableLayer } = stats;
  if (cpu) figures.message(2, (x) => writeCpu(x, cpu));
  if (memory) figures.message(3, (x) => writeMemory(x, memory));
  if (writableLayer) figures.message(4, (x) => writeFilesystem(x, writableLayer));
  const head = new Wire();
  head.tag(1, LEN);
  head.varint(attributes.length + figures.bytes.length);
  return Buffer.concat([Buffer.from(head.bytes), attributes, Buffer.from(figures.bytes)]);
}
