// Shared helpers for the cri-api v0.36 tests: a raw client for every RPC of
// both services (by name, as a v0.36 client generated from the proto sees
// them) and a reader for server streams.
import * as zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { makeLayer, type Layer } from '../helpers/registry';
import { buildTar, sha256Digest, type TarSpec } from '../helpers/tar_writer';
import { loadCri } from '../../src/proto';

export interface RawCall {
  service: 'RuntimeService' | 'ImageService';
  method: string;
  streaming: boolean;
}

export class RawCri {
  private readonly clients: Record<RawCall['service'], grpc.Client>;

  constructor(socket: string) {
    const cri = loadCri();
    const target = `unix://${socket}`;
    const creds = grpc.credentials.createInsecure();
    const opts = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    this.clients = {
      RuntimeService: new cri.runtime.v1.RuntimeService(target, creds, opts),
      ImageService: new cri.runtime.v1.ImageService(target, creds, opts),
    };
  }

  /** Every RPC the v0.36 proto declares. */
  static calls(): RawCall[] {
    const cri = loadCri();
    const out: RawCall[] = [];
    for (const service of ['RuntimeService', 'ImageService'] as const) {
      for (const [method, def] of Object.entries(cri.runtime.v1[service].service)) {
        out.push({ service, method, streaming: def.responseStream });
      }
    }
    return out;
  }

  private fn(call: Pick<RawCall, 'service' | 'method'>): (...args: unknown[]) => unknown {
    const client = this.clients[call.service];
    const fn = (client as unknown as Record<string, unknown>)[call.method];
    if (typeof fn !== 'function') throw new Error(`no client method ${call.method}`);
    return (...args: unknown[]) => (fn as (...a: unknown[]) => unknown).apply(client, args);
  }

  unary<T>(service: RawCall['service'], method: string, req: object, deadlineMs = 60_000): Promise<T> {
    return new Promise((resolve, reject) => {
      this.fn({ service, method })(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: T) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  /** Reads a server stream to its end: every message, in order. */
  stream<T>(service: RawCall['service'], method: string, req: object, deadlineMs = 60_000): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const call = this.fn({ service, method })(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }) as grpc.ClientReadableStream<T>;
      const got: T[] = [];
      call.on('data', (m: T) => got.push(m));
      call.once('error', reject);
      call.once('end', () => resolve(got));
    });
  }

  close(): void {
    for (const c of Object.values(this.clients)) c.close();
  }
}

export function grpcCode(err: unknown): number | undefined {
  return (err as Partial<grpc.ServiceError>).code;
}

/** A layer from crafted tar entries (owners and modes as given). */
export function tarLayer(entries: TarSpec[]): Layer {
  const tar = buildTar(entries);
  const blob = zlib.gzipSync(tar);
  return { blob, digest: sha256Digest(blob), diffId: sha256Digest(tar), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' };
}

/** busybox-static with the applets these tests run. */
export function busyboxApplets(): Layer {
  const files: Parameters<typeof makeLayer>[0] = { 'bin/busybox': { copyOf: '/bin/busybox' } };
  for (const a of ['sh', 'sleep', 'cat', 'ls', 'stat', 'test', 'echo', 'grep', 'touch', 'mknod']) files[`bin/${a}`] = { symlink: 'busybox' };
  return makeLayer(files);
}
