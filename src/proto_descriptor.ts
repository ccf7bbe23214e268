// Makes the JSON descriptor of the CRI API (src/gen/cri_descriptor.json) from
// proto/runtime/v1/api.proto: `npm run gen` runs this file, and a test checks
// the committed descriptor is still what the .proto gives. berthd itself
// never parses the .proto (src/proto.ts loads the descriptor).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

export const PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'runtime', 'v1', 'api.proto');
/** Where `npm run gen` writes the descriptor (in the source tree; tsc copies it to dist). */
const DESCRIPTOR_SOURCE = path.resolve(__dirname, '..', '..', 'src', 'gen', 'cri_descriptor.json');

/** The descriptor of api.proto, field names in camelCase as @grpc/proto-loader (keepCase: false) names them. */
export function criDescriptorFromProto(): protobuf.INamespace {
  const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: false });
  root.resolveAll();
  return root.toJSON();
}

if (require.main === module) fs.writeFileSync(DESCRIPTOR_SOURCE, `${JSON.stringify(criDescriptorFromProto())}\n`);
