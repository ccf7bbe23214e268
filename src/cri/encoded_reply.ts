// The list replies the kubelet polls every second (ListPodSandbox,
// ListContainers) are kept whole, encoded, per selection, while nothing they
// are built from has changed, so an unchanged node costs a relist a lookup;
// a reply that has to be rebuilt is made of per-object encodings kept while
// what the object shows is unchanged (a copy per object instead of a
// conversion and an encoding). Entries of a repeated field are independent on
// the wire, so a reply is the concatenation of the encodings of one-item
// replies.
import type * as grpc from '@grpc/grpc-js';

/** A reply already in wire form; the server's serializer passes it through. */
export class EncodedReply {
  constructor(readonly parts: readonly Buffer[]) {}

  toBuffer(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts as Buffer[]);
  }
}

/** The serializer of a method's reply, for the server: encoded replies pass through. */
export function replySerializer(method: grpc.MethodDefinition<unknown, unknown>): (value: unknown) => Buffer {
  return (value) => (value instanceof EncodedReply ? value.toBuffer() : method.responseSerialize(value));
}

/**
 * One-item reply encodings per record. `key` names everything that can
 * change in what a record shows (its state, say); the rest of it must be
 * fixed for the record's life.
 */
export class ItemEncodings<R extends object, Item> {
  private readonly cache = new WeakMap<R, { key: string; bytes: Buffer }>();

  constructor(private readonly encodeOneItemReply: (item: Item) => Buffer) {}

  encode(rec: R, key: string, build: () => Item): Buffer {
    const hit = this.cache.get(rec);
    if (hit && hit.key === key) return hit.bytes;
    const bytes = this.encodeOneItemReply(build());
    this.cache.set(rec, { key, bytes });
    return bytes;
  }
}

/**
 * Whole list replies of one source (a service: one daemon's containers, say),
 * per selection. `generation` must change whenever anything the reply is
 * built from changes (records created, updated or deleted, image names moved,
 * a pause found dead); an entry is served only while it is the same.
 * Selections are a fixed few (every record, or one state), so the map stays small.
 */
export class ListReplyCache<Source extends object> {
  private readonly bySource = new WeakMap<Source, Map<string, { generation: readonly number[]; reply: EncodedReply }>>();

  reply(source: Source, selection: string, generation: readonly number[], build: () => Buffer[]): EncodedReply {
    let entries = this.bySource.get(source);
    if (!entries) this.bySource.set(source, (entries = new Map()));
    const hit = entries.get(selection);
    if (hit && sameGeneration(hit.generation, generation)) return hit.reply;
    const reply = new EncodedReply([Buffer.concat(build())]);
    entries.set(selection, { generation, reply });
    return reply;
  }
}

function sameGeneration(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
