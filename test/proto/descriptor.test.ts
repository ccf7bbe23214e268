// berthd's CRI codecs come from the committed JSON descriptor
// (src/gen/cri_descriptor.json) through protobufjs's light build, not from
// @grpc/proto-loader parsing api.proto: the descriptor must still be what the
// .proto gives, and every method must encode and decode exactly as
// proto-loader's definition of it does (same bytes, same objects).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { LOADER_OPTIONS, loadCri } from '../../src/proto';
import { criDescriptorFromProto, PROTO_PATH } from '../../src/proto_descriptor';

const COMMITTED = path.resolve(__dirname, '..', '..', '..', 'src', 'gen', 'cri_descriptor.json');
const SERVICES = ['RuntimeService', 'ImageService'] as const;

/** A value for every field of `type` (int64 above 2^53, the last enum value, one member of each oneof), nested to `depth`. */
function fullMessage(type: protobuf.Type, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofTaken = new Set<string>();
  for (const field of type.fieldsArray) {
    field.resolve();
    if (field.partOf) {
      if (oneofTaken.has(field.partOf.name)) continue;
      oneofTaken.add(field.partOf.name);
    }
    const one = (): unknown => {
      const t = field.resolvedType;
      if (t instanceof protobuf.Enum) return Object.keys(t.values).at(-1);
      if (t instanceof protobuf.Type) return depth > 0 ? fullMessage(t, depth - 1) : {};
      switch (field.type) {
        case 'string':
          return `${field.name} ✓`;
        case 'bytes':
          return Buffer.from(field.name);
        case 'bool':
          return true;
        case 'int64':
        case 'sint64':
        case 'sfixed64':
          return '-9007199254740993';
        case 'uint64':
        case 'fixed64':
          return '18446744073709551615';
        case 'double':
        case 'float':
          return 1.5;
        default:
          return 7;
      }
    };
    if (field instanceof protobuf.MapField) out[field.name] = { k1: one(), k2: one() };
    else if (field.repeated) out[field.name] = [one(), one()];
    else out[field.name] = one();
  }
  return out;
}

describe('CRI codecs from the JSON descriptor', () => {
  const ours = loadCri().runtime.v1;
  const reference = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: false });

  it('the committed descriptor is what api.proto gives (run `npm run gen` after changing the .proto)', () => {
    assert.deepEqual(JSON.parse(fs.readFileSync(COMMITTED, 'utf8')), JSON.parse(JSON.stringify(criDescriptorFromProto())));
  });

  for (const service of SERVICES) {
    it(`${service}: every method has proto-loader's path, streaming, name and codecs`, () => {
      const expected = reference[`runtime.v1.${service}`] as protoLoader.ServiceDefinition;
      const actual = ours[service].service as grpc.ServiceDefinition;
      assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
      for (const [name, want] of Object.entries(expected)) {
        const got = actual[name];
        assert.deepEqual(
          { path: got.path, requestStream: got.requestStream, responseStream: got.responseStream, originalName: got.originalName },
          { path: want.path, requestStream: want.requestStream, responseStream: want.responseStream, originalName: want.originalName },
        );
        const method = root.lookupService(`runtime.v1.${service}`).methods[name];
        method.resolve();
        for (const side of ['request', 'response'] as const) {
          const type = (side === 'request' ? method.resolvedRequestType : method.resolvedResponseType) as protobuf.Type;
          const serialize = side === 'request' ? ([got.requestSerialize, want.requestSerialize] as const) : ([got.responseSerialize, want.responseSerialize] as const);
          const deserialize = side === 'request' ? ([got.requestDeserialize, want.requestDeserialize] as const) : ([got.responseDeserialize, want.responseDeserialize] as const);
          for (const message of [{}, fullMessage(type, 4)]) {
            const bytes = serialize[0](message);
            assert.ok(Buffer.isBuffer(bytes), `${name} ${side}: a Buffer`);
            assert.deepEqual(bytes, serialize[1](message), `${name} ${side}: the same bytes`);
            assert.deepEqual(deserialize[0](bytes), deserialize[1](bytes), `${name} ${side}: the same object back`);
          }
          assert.throws(() => serialize[0]([]), /expected object with .* structure, got array instead/);
        }
      }
    });
  }
});
