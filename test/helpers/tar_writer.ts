// A tiny tar writer for tests: lets a test craft any header it likes,
// including hostile ones ('..' names, absolute paths, links out of the tree)
// that GNU tar refuses to write.
import { createHash } from 'node:crypto';

export type TarSpecType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarSpec {
  name: string;
  type?: TarSpecType;
  body?: string | Buffer;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devMajor?: number;
  devMinor?: number;
  /** Extra PAX records for this entry (written as an 'x' header). */
  pax?: Record<string, string | Buffer>;
  /** Put a long name/link in GNU 'L'/'K' entries instead of PAX. */
  gnuLong?: boolean;
  /** Write the raw name into the header even if it's long (truncated at 100). */
  raw?: boolean;
}

const TYPEFLAG: Record<TarSpecType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(fields: {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  flag: string;
  linkName: string;
  devMajor: number;
  devMinor: number;
}): Buffer {
  const h = Buffer.alloc(512);
  h.write(fields.name.slice(0, 100), 0, 'utf8');
  h.write(octal(fields.mode, 8), 100, 'latin1');
  h.write(octal(fields.uid, 8), 108, 'latin1');
  h.write(octal(fields.gid, 8), 116, 'latin1');
  if (fields.size > 0o77777777777) {
    // GNU base-256
    h[124] = 0x80;
    let v = BigInt(fields.size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  } else {
    h.write(octal(fields.size, 12), 124, 'latin1');
  }
  h.write(octal(Math.floor(fields.mtime), 12), 136, 'latin1');
  h.write(fields.flag, 156, 'latin1');
  h.write(fields.linkName.slice(0, 100), 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(fields.devMajor, 8), 329, 'latin1');
  h.write(octal(fields.devMinor, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function pad(buf: Buffer): Buffer {
  const extra = (512 - (buf.length % 512)) % 512;
  return extra === 0 ? buf : Buffer.concat([buf, Buffer.alloc(extra)]);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function meta(flag: string, name: string, data: Buffer): Buffer {
  return Buffer.concat([
    header({
      name,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime: 0,
      flag,
      linkName: '',
      devMajor: 0,
      devMinor: 0,
    }),
    pad(data),
  ]);
}

/** A bare extended header block ('x' per-entry, 'g' global, 'L'/'K' GNU long name/link) with raw data. */
export function extendedHeader(flag: 'x' | 'g' | 'L' | 'K', data: Buffer): Buffer {
  return meta(flag, flag === 'L' || flag === 'K' ? '././@LongLink' : 'PaxHeaders/g', data);
}

/** PAX records ("<len> key=value\n") for an 'x' or 'g' header. */
export function paxRecords(records: Array<[string, string | Buffer]>): Buffer {
  return Buffer.concat(records.map(([k, v]) => paxRecord(k, Buffer.from(v))));
}

export function tarEntry(spec: TarSpec): Buffer {
  const type = spec.type ?? 'file';
  const body = type === 'file' ? Buffer.from(spec.body ?? '') : Buffer.alloc(0);
  const linkName = spec.linkName ?? '';
  const parts: Buffer[] = [];
  const pax: Array<[string, Buffer]> = Object.entries(spec.pax ?? {}).map(([k, v]) => [k, Buffer.from(v)]);
  let name = spec.name;
  let link = linkName;
  if (!spec.raw && Buffer.byteLength(name) > 99) {
    if (spec.gnuLong) parts.push(meta('L', '././@LongLink', Buffer.from(name + '\0')));
    else pax.push(['path', Buffer.from(name)]);
    name = name.slice(0, 99);
  }
  if (!spec.raw && Buffer.byteLength(link) > 99) {
    if (spec.gnuLong) parts.push(meta('K', '././@LongLink', Buffer.from(link + '\0')));
    else pax.push(['linkpath', Buffer.from(link)]);
    link = link.slice(0, 99);
  }
  if (pax.length > 0) {
    parts.push(meta('x', 'PaxHeaders/x', Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)))));
  }
  parts.push(
    header({
      name,
      mode: spec.mode ?? (type === 'dir' ? 0o755 : 0o644),
      uid: spec.uid ?? 0,
      gid: spec.gid ?? 0,
      size: body.length,
      mtime: spec.mtime ?? 1_600_000_000,
      flag: TYPEFLAG[type],
      linkName: link,
      devMajor: spec.devMajor ?? 0,
      devMinor: spec.devMinor ?? 0,
    }),
  );
  parts.push(pad(body));
  return Buffer.concat(parts);
}

/** A complete archive (with the two zero blocks). */
export function buildTar(entries: TarSpec[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(1024)]);
}

export function sha256Digest(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** OCI chain ID of a list of diff IDs. */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : `sha256:${createHash('sha256').update(`${prev} ${d}`).digest('hex')}`);
  }
  return out;
}
