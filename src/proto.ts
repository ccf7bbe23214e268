// Loads the CRI v1 API from proto/. int64 fields are decoded as decimal
// strings (longs: String) so nanosecond timestamps and sizes above 2^53
// round-trip exactly; enums are decoded as their names.
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/api';

export const PROTO_PATH = path.resolve(__dirname, '..', '..', 'proto', 'runtime', 'v1', 'api.proto');

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: ProtoGrpcType | undefined;

export function loadCri(): ProtoGrpcType {
  if (!cached) {
    const def = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
  }
  return cached;
}
