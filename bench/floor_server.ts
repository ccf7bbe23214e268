// The floor of a CRI daemon's CPU: a bare grpc-js server, in its own process
// (so its CPU can be read from /proc), answering every unary RuntimeService
// and ImageService method with an empty reply on a unix socket.
// `node dist/bench/floor_server.js SOCKET` prints "ready" once serving.
import * as grpc from '@grpc/grpc-js';
import { loadCri } from '../src/proto';

function emptyReplies(def: grpc.ServiceDefinition): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(def)) {
    if (m.requestStream || m.responseStream) continue;
    impl[name] = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, {});
  }
  return impl;
}

function main(): void {
  const socket = process.argv[2];
  if (!socket) throw new Error('usage: floor_server.js SOCKET');
  const cri = loadCri();
  const server = new grpc.Server();
  server.addService(cri.runtime.v1.RuntimeService.service, emptyReplies(cri.runtime.v1.RuntimeService.service));
  server.addService(cri.runtime.v1.ImageService.service, emptyReplies(cri.runtime.v1.ImageService.service));
  server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
    process.stdout.write('ready\n');
  });
  process.once('SIGTERM', () => server.forceShutdown());
}

main();
