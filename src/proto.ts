// The CRI v1 API for grpc-js, from its JSON descriptor (src/gen/cri_descriptor.json,
// made from proto/ by `npm run gen`, see proto_descriptor.ts): protobufjs's light
// build (reflection and codecs, no .proto parser) makes a type's codec the first
// time it is used. Loading api.proto through @grpc/proto-loader instead parsed
// it at every start (~140 ms) and kept a descriptor object of every message that
// nothing here reads (~1.5 MiB of heap). The codecs are proto-loader's: a
// message is made from a plain object with fromObject and read back with
// toObject(LOADER_OPTIONS), so int64 fields are decimal strings (longs: String;
// nanosecond timestamps and sizes above 2^53 round-trip exactly) and enums are
// their names.
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { Root, type INamespace, type Method, type Service, type Type } from 'protobufjs/light';
import * as descriptor from './gen/cri_descriptor.json';
import type { ImageServiceClient, ImageServiceDefinition } from './gen/runtime/v1/ImageService';
import type { RuntimeServiceClient, RuntimeServiceDefinition } from './gen/runtime/v1/RuntimeService';

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Each method as grpc-js uses it: path, streaming and codecs (proto-loader's definitions also carry descriptors). */
type Codecs<D> = grpc.ServiceDefinition & { [M in keyof D]: Omit<D[M], 'requestType' | 'responseType' | 'options'> };

/** A service's client constructor, with the definition a server registers. */
type CriService<Client, Definition> = {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ChannelOptions>): Client;
  service: Codecs<Definition>;
};

/** The two CRI services. */
export interface CriServices {
  runtime: {
    v1: {
      RuntimeService: CriService<RuntimeServiceClient, RuntimeServiceDefinition>;
      ImageService: CriService<ImageServiceClient, ImageServiceDefinition>;
    };
  };
}

const SERVICES = ['runtime.v1.RuntimeService', 'runtime.v1.ImageService'] as const;

function serializer(type: Type): (value: object) => Buffer {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value)).finish() as Buffer;
  };
}

function deserializer(type: Type): (bytes: Buffer) => object {
  return (bytes) => type.toObject(type.decode(bytes), LOADER_OPTIONS);
}

function methodDefinition(serviceName: string, method: Method): grpc.MethodDefinition<object, object> {
  method.resolve();
  const request = method.resolvedRequestType as Type;
  const response = method.resolvedResponseType as Type;
  return {
    path: `/${serviceName}/${method.name}`,
    requestStream: method.requestStream === true,
    responseStream: method.responseStream === true,
    requestSerialize: serializer(request),
    requestDeserialize: deserializer(request),
    responseSerialize: serializer(response),
    responseDeserialize: deserializer(response),
    // The client's lower-case alias of each method, as proto-loader names it (the CRI's names are PascalCase words).
    originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
  };
}

let cached: CriServices | undefined;

export function loadCri(): CriServices {
  if (!cached) {
    const root = Root.fromJSON(descriptor as INamespace);
    const definitions: Parameters<typeof grpc.loadPackageDefinition>[0] = {};
    for (const name of SERVICES) {
      const service = root.lookupService(name) as Service;
      definitions[name] = Object.fromEntries(service.methodsArray.map((m) => [m.name, methodDefinition(name, m)]));
    }
    cached = grpc.loadPackageDefinition(definitions) as unknown as CriServices;
  }
  return cached;
}
