// A small promise-based CRI client over the unix socket, used by the tests,
// the benchmarks and the `berth` command-line tool.
import * as grpc from '@grpc/grpc-js';
import { loadCri } from '../proto';
import type { RuntimeServiceClient } from '../gen/runtime/v1/RuntimeService';
import type { ImageServiceClient } from '../gen/runtime/v1/ImageService';
import type { ContainerEventResponse__Output } from '../gen/runtime/v1/ContainerEventResponse';

type Unary<Req, Res> = (req: Req, opts?: { deadlineMs?: number }) => Promise<Res>;

/** The request and response types of a generated client method. */
// Inference on an overloaded method sees the last overload: (argument, callback).
type MethodTypes<F> = F extends (argument: infer Req, callback: grpc.requestCallback<infer Res>) => grpc.ClientUnaryCall
  ? [Req, Res]
  : never;

type Promisified<C> = {
  [K in keyof C as K extends `${Lowercase<string & K>}` ? never : K]: MethodTypes<C[K]> extends [infer Req, infer Res]
    ? Unary<Req, Res>
    : never;
};

export type RuntimeApi = Promisified<RuntimeServiceClient>;
export type ImageApi = Promisified<ImageServiceClient>;

function promisify<C extends grpc.Client>(client: C): Promisified<C> {
  return new Proxy({} as Promisified<C>, {
    get(_t, name: string) {
      const fn = (client as unknown as Record<string, unknown>)[name];
      if (typeof fn !== 'function') return undefined;
      return (req: unknown, opts?: { deadlineMs?: number }) =>
        new Promise((resolve, reject) => {
          const deadline = new Date(Date.now() + (opts?.deadlineMs ?? 120_000));
          (fn as (...a: unknown[]) => unknown).call(
            client,
            req,
            new grpc.Metadata(),
            { deadline },
            (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)),
          );
        });
    },
  });
}

export class CriClient {
  readonly runtime: RuntimeApi;
  readonly image: ImageApi;
  private readonly clients: grpc.Client[];
  private readonly runtimeClient: RuntimeServiceClient;

  constructor(readonly socketPath: string) {
    const cri = loadCri();
    const target = `unix://${socketPath}`;
    const creds = grpc.credentials.createInsecure();
    const opts = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
    const rt = new cri.runtime.v1.RuntimeService(target, creds, opts);
    const im = new cri.runtime.v1.ImageService(target, creds, opts);
    this.clients = [rt, im];
    this.runtimeClient = rt as unknown as RuntimeServiceClient;
    this.runtime = promisify(rt as unknown as RuntimeServiceClient & grpc.Client) as RuntimeApi;
    this.image = promisify(im as unknown as ImageServiceClient & grpc.Client) as ImageApi;
  }

  /** The GetContainerEvents stream (server streaming; cancel() to leave). */
  containerEvents(): grpc.ClientReadableStream<ContainerEventResponse__Output> {
    return this.runtimeClient.GetContainerEvents({}, new grpc.Metadata());
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
