// The D-Bus wire format (the specification's "Message Protocol" section),
// only as much as berth's calls to systemd need: the basic types, arrays,
// structs, dict entries and variants; no unix fds. Reading is bounded: every
// length is checked against the message, and nesting is capped.

/** A value with its own signature (D-Bus `v`). */
export class Variant {
  constructor(
    readonly signature: string,
    readonly value: DbusValue,
  ) {}
}

/** y n q i u → number; x t → bigint; b → boolean; s o g → string; a ( { → arrays (a dict entry is [key, value]); v → Variant. */
export type DbusValue = number | bigint | boolean | string | Variant | DbusValue[];

export class DbusWireError extends Error {}

/** Nesting the specification allows (32 arrays + 32 structs); more is refused. */
const MAX_DEPTH = 64;

/** The end (exclusive) of the single complete type starting at `i` of `sig`. */
export function completeTypeEnd(sig: string, i: number): number {
  const c = sig[i];
  if (c === undefined) throw new DbusWireError(`signature "${sig}" ends inside a type`);
  if ('ybnqiuxtdsogvh'.includes(c)) return i + 1;
  if (c === 'a') return completeTypeEnd(sig, i + 1);
  if (c === '(' || c === '{') {
    const close = c === '(' ? ')' : '}';
    let j = i + 1;
    while (sig[j] !== close) {
      if (j >= sig.length) throw new DbusWireError(`signature "${sig}" has an unclosed ${c}`);
      j = completeTypeEnd(sig, j);
    }
    return j + 1;
  }
  throw new DbusWireError(`signature "${sig}" has an unknown type code "${c}"`);
}

/** The complete types of a signature, in order. */
export function splitSignature(sig: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < sig.length; ) {
    const end = completeTypeEnd(sig, i);
    out.push(sig.slice(i, end));
    i = end;
  }
  return out;
}

function alignmentOf(type: string): number {
  switch (type[0]) {
    case 'y': case 'g': case 'v': return 1;
    case 'n': case 'q': return 2;
    case 'x': case 't': case 'd': case '(': case '{': return 8;
    default: return 4;
  }
}

/** Writes little-endian D-Bus data into a growing buffer; offsets count from the message start. */
export class WireWriter {
  private buf = Buffer.alloc(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  align(n: number): void {
    const pad = (n - (this.length % n)) % n;
    this.room(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  u8(v: number): void {
    this.room(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }

  u32(v: number): void {
    this.align(4);
    this.room(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }

  /** Writes a u32 later (array lengths); returns where. */
  reserveU32(): number {
    this.u32(0);
    return this.length - 4;
  }

  patchU32(at: number, v: number): void {
    this.buf.writeUInt32LE(v, at);
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }

  value(type: string, v: DbusValue, depth = 0): void {
    if (depth > MAX_DEPTH) throw new DbusWireError('value nested too deeply');
    const c = type[0];
    switch (c) {
      case 'y': return this.u8(num(v, type));
      case 'b': return this.u32(bool(v) ? 1 : 0);
      case 'n': case 'q': {
        this.align(2);
        this.room(2);
        if (c === 'n') this.buf.writeInt16LE(num(v, type), this.length);
        else this.buf.writeUInt16LE(num(v, type), this.length);
        this.length += 2;
        return;
      }
      case 'i': case 'u': {
        this.align(4);
        this.room(4);
        if (c === 'i') this.buf.writeInt32LE(num(v, type), this.length);
        else this.buf.writeUInt32LE(num(v, type), this.length);
        this.length += 4;
        return;
      }
      case 'x': case 't': {
        this.align(8);
        this.room(8);
        const big = typeof v === 'bigint' ? v : BigInt(num(v, type));
        if (c === 'x') this.buf.writeBigInt64LE(big, this.length);
        else this.buf.writeBigUInt64LE(big, this.length);
        this.length += 8;
        return;
      }
      case 'd': {
        this.align(8);
        this.room(8);
        this.buf.writeDoubleLE(num(v, type), this.length);
        this.length += 8;
        return;
      }
      case 's': case 'o': {
        const b = Buffer.from(str(v, type), 'utf8');
        this.u32(b.length);
        this.bytes(b);
        return this.u8(0);
      }
      case 'g': {
        const b = Buffer.from(str(v, type), 'utf8');
        if (b.length > 255) throw new DbusWireError('signature longer than 255 bytes');
        this.u8(b.length);
        this.bytes(b);
        return this.u8(0);
      }
      case 'v': {
        if (!(v instanceof Variant)) throw new DbusWireError('a variant needs a Variant value');
        this.value('g', v.signature);
        return this.value(v.signature, v.value, depth + 1);
      }
      case 'a': {
        const elem = type.slice(1);
        const at = this.reserveU32();
        this.align(alignmentOf(elem));
        const start = this.length;
        for (const e of arr(v, type)) this.value(elem, e, depth + 1);
        this.patchU32(at, this.length - start);
        return;
      }
      case '(': case '{': {
        this.align(8);
        const fields = splitSignature(type.slice(1, -1));
        const vals = arr(v, type);
        if (vals.length !== fields.length) throw new DbusWireError(`${type} needs ${fields.length} fields, got ${vals.length}`);
        fields.forEach((f, i) => this.value(f, vals[i], depth + 1));
        return;
      }
      default:
        throw new DbusWireError(`cannot write type "${type}"`);
    }
  }

  values(signature: string, vals: DbusValue[]): void {
    const types = splitSignature(signature);
    if (types.length !== vals.length) throw new DbusWireError(`signature "${signature}" needs ${types.length} values, got ${vals.length}`);
    types.forEach((t, i) => this.value(t, vals[i]));
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Reads D-Bus data of either byte order from one message; every read is bounds-checked. */
export class WireReader {
  constructor(
    private readonly buf: Buffer,
    private readonly littleEndian: boolean,
    public offset = 0,
    /** Reads stop here (the end of the message). */
    private readonly end = buf.length,
  ) {}

  private need(n: number): void {
    if (this.offset + n > this.end) throw new DbusWireError('message truncated');
  }

  align(n: number): void {
    this.offset += (n - (this.offset % n)) % n;
    if (this.offset > this.end) throw new DbusWireError('message truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }

  u32(): number {
    this.align(4);
    this.need(4);
    const v = this.littleEndian ? this.buf.readUInt32LE(this.offset) : this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  private text(len: number): string {
    this.need(len + 1);
    const s = this.buf.toString('utf8', this.offset, this.offset + len);
    this.offset += len + 1;
    return s;
  }

  value(type: string, depth = 0): DbusValue {
    if (depth > MAX_DEPTH) throw new DbusWireError('value nested too deeply');
    const le = this.littleEndian;
    switch (type[0]) {
      case 'y': return this.u8();
      case 'b': return this.u32() !== 0;
      case 'n': case 'q': {
        this.align(2);
        this.need(2);
        const signed = type[0] === 'n';
        const v = signed ? (le ? this.buf.readInt16LE(this.offset) : this.buf.readInt16BE(this.offset)) : le ? this.buf.readUInt16LE(this.offset) : this.buf.readUInt16BE(this.offset);
        this.offset += 2;
        return v;
      }
      case 'i': {
        this.align(4);
        this.need(4);
        const v = le ? this.buf.readInt32LE(this.offset) : this.buf.readInt32BE(this.offset);
        this.offset += 4;
        return v;
      }
      case 'u': case 'h': return this.u32();
      case 'x': case 't': {
        this.align(8);
        this.need(8);
        const signed = type[0] === 'x';
        const v = signed ? (le ? this.buf.readBigInt64LE(this.offset) : this.buf.readBigInt64BE(this.offset)) : le ? this.buf.readBigUInt64LE(this.offset) : this.buf.readBigUInt64BE(this.offset);
        this.offset += 8;
        return v;
      }
      case 'd': {
        this.align(8);
        this.need(8);
        const v = le ? this.buf.readDoubleLE(this.offset) : this.buf.readDoubleBE(this.offset);
        this.offset += 8;
        return v;
      }
      case 's': case 'o': return this.text(this.u32());
      case 'g': return this.text(this.u8());
      case 'v': {
        const sig = this.text(this.u8());
        if (splitSignature(sig).length !== 1) throw new DbusWireError(`variant signature "${sig}" is not one type`);
        return new Variant(sig, this.value(sig, depth + 1));
      }
      case 'a': {
        const len = this.u32();
        const elem = type.slice(1);
        this.align(alignmentOf(elem));
        const stop = this.offset + len;
        if (stop > this.end) throw new DbusWireError('array longer than its message');
        const out: DbusValue[] = [];
        while (this.offset < stop) out.push(this.value(elem, depth + 1));
        if (this.offset !== stop) throw new DbusWireError('array elements overrun its length');
        return out;
      }
      case '(': case '{': {
        this.align(8);
        return splitSignature(type.slice(1, -1)).map((f) => this.value(f, depth + 1));
      }
      default:
        throw new DbusWireError(`cannot read type "${type}"`);
    }
  }

  values(signature: string): DbusValue[] {
    return splitSignature(signature).map((t) => this.value(t));
  }
}

function num(v: DbusValue, type: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw new DbusWireError(`type ${type} needs a number`);
}

function bool(v: DbusValue): boolean {
  if (typeof v !== 'boolean') throw new DbusWireError('type b needs a boolean');
  return v;
}

function str(v: DbusValue, type: string): string {
  if (typeof v !== 'string') throw new DbusWireError(`type ${type} needs a string`);
  if (v.includes('\0')) throw new DbusWireError(`a ${type} value may hold no NUL`);
  return v;
}

function arr(v: DbusValue, type: string): DbusValue[] {
  if (!Array.isArray(v)) throw new DbusWireError(`type ${type} needs an array`);
  return v;
}
