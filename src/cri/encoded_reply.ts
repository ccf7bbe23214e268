// The list replies the kubelet polls every second (ListPodSandbox,
// ListContainers) are built from per-object encodings kept while what the
// object shows is unchanged, so a relist costs a lookup and a copy per object
// instead of a conversion and an encoding. Entries of a repeated field are
// independent on the wire, so a reply is the concatenation of the encodings
// of one-item replies.
import type * as grpc from '@grpc/grpc-js';

/** A reply already in wire form; the server's serializer passes it through. */
export class EncodedReply {
  constructor(readonly parts: readonly Buffer[]) {}

  toBuffer(): Buffer {
    return Buffer.concat(this.parts as Buffer[]);
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
