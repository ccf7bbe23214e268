// Fuzzes a real berthd over its CRI socket for a bounded time: random
// well-typed requests (built from the proto's own types), mutated encodings
// of them and raw garbage, to every unary RPC. Every reply must be a gRPC
// status from berthd (never a hang), no handler may fail with an untyped
// exception ("internal error: ..."), and berthd must stay up. The seed is
// printed so a failure replays (BERTH_CRI_FUZZ_SEED); BERTH_CRI_FUZZ_SECONDS
// runs it longer.
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { PROTO_PATH } from '../../src/proto_descriptor';
import { TestBerthd } from '../helpers/berthd';

const SECONDS = Number(process.env.BERTH_CRI_FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.BERTH_CRI_FUZZ_SEED ?? Date.now() % 2 ** 31);
/** A reply slower than this is a hang (the RPCs fuzzed here do no network I/O). */
const CALL_DEADLINE_MS = 20_000;
/**
 * Not fuzzed: PullImage would dial random hosts, and a RunPodSandbox that
 * happens to be valid creates a real pod (namespaces, cgroups) the test could
 * not tear down. Their validation is covered by their own tests.
 */
const SKIPPED = new Set(['PullImage', 'RunPodSandbox']);

/** mulberry32: small, seeded, good enough to pick inputs reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = ['', 'a', 'x'.repeat(300), '../../../../etc/passwd', '/etc/shadow', 'sha256:', '\0', '💥', 'CONTAINER_RUNNING', 'busybox', 'k=v', ' ', 'x'.repeat(70_000)];

class Gen {
  constructor(private readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  string(): string {
    if (this.r() < 0.6) return this.pick(STRINGS);
    const len = this.int(40);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(this.r() < 0.9 ? 32 + this.int(95) : this.int(0x3000));
    return s;
  }
  scalar(type: string): unknown {
    switch (type) {
      case 'string':
        return this.string();
      case 'bytes':
        return Buffer.from(this.string());
      case 'bool':
        return this.r() < 0.5;
      case 'int64':
      case 'uint64':
      case 'sint64':
        return this.pick(['0', '-1', '1', '9223372036854775807', '-9223372036854775808', String(this.int(1e9))]);
      case 'double':
      case 'float':
        return this.pick([0, -1, 1.5, 1e308, Number.NaN]);
      default:
        // int32 and friends
        return this.pick([0, -1, 1, 2147483647, -2147483648, this.int(70000)]);
    }
  }
  /** A random instance of `type`, fields filled at random, nesting bounded. */
  message(type: protobuf.Type, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const field of type.fieldsArray) {
      if (this.r() < 0.35) continue;
      field.resolve();
      const one = (): unknown => {
        if (field.resolvedType instanceof protobuf.Type) return depth > 0 ? this.message(field.resolvedType, depth - 1) : {};
        if (field.resolvedType instanceof protobuf.Enum) return this.pick([...Object.values(field.resolvedType.values), 99]);
        return this.scalar(field.type);
      };
      if (field instanceof protobuf.MapField) {
        const m: Record<string, unknown> = {};
        for (let i = this.int(4); i > 0; i--) m[this.string()] = one();
        out[field.name] = m;
      } else if (field.repeated) {
        out[field.name] = Array.from({ length: this.int(4) }, one);
      } else {
        out[field.name] = one();
      }
    }
    return out;
  }
  /** Flips, truncates or extends an encoding. */
  mutate(buf: Buffer): Buffer {
    const b = Buffer.from(buf);
    switch (this.int(3)) {
      case 0:
        for (let i = 1 + this.int(8); i > 0 && b.length; i--) b[this.int(b.length)] = this.int(256);
        return b;
      case 1:
        return b.subarray(0, this.int(b.length + 1));
      default:
        return Buffer.concat([b, Buffer.from(Array.from({ length: 1 + this.int(32) }, () => this.int(256)))]);
    }
  }
}

describe('fuzz: CRI requests against a real berthd', function () {
  this.timeout((SECONDS + 120) * 1000);
  let d: TestBerthd;
  before(async () => {
    d = await TestBerthd.start();
  });
  after(async () => {
    await d?.cleanup();
  });

  it(`answers every random, malformed and garbage request with a status for ${SECONDS} s and stays up`, async () => {
    console.log(`      seed ${SEED} (BERTH_CRI_FUZZ_SEED=${SEED} replays it)`);
    const root = protobuf.loadSync(PROTO_PATH);
    const gen = new Gen(rng(SEED));
    const client = new grpc.Client(`unix:${d.socket}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    const methods: Array<{ path: string; type: protobuf.Type }> = [];
    for (const svc of ['runtime.v1.RuntimeService', 'runtime.v1.ImageService']) {
      const s = root.lookupService(svc);
      for (const m of s.methodsArray) {
        if (m.responseStream || m.requestStream || SKIPPED.has(m.name)) continue;
        methods.push({ path: `/${svc}/${m.name}`, type: root.lookupType(m.requestType) });
      }
    }
    const codes = new Map<string, number>();
    const untyped = new Set<string>();
    const hangs: string[] = [];
    let calls = 0;
    const deadline = Date.now() + SECONDS * 1000;

    const one = async (): Promise<void> => {
      const m = gen.pick(methods);
      const kind = gen.int(10);
      let body: Buffer;
      if (kind < 6) {
        const obj = gen.message(m.type, 3);
        body = Buffer.from(m.type.encode(m.type.fromObject(obj)).finish());
      } else if (kind < 9) {
        body = gen.mutate(Buffer.from(m.type.encode(m.type.fromObject(gen.message(m.type, 2))).finish()));
      } else {
        body = Buffer.from(Array.from({ length: gen.int(200) }, () => gen.int(256)));
      }
      await new Promise<void>((resolve) => {
        client.makeUnaryRequest(
          m.path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          new grpc.Metadata(),
          { deadline: Date.now() + CALL_DEADLINE_MS },
          (err: grpc.ServiceError | null) => {
            calls++;
            const name = err ? grpc.status[err.code] : 'OK';
            codes.set(name, (codes.get(name) ?? 0) + 1);
            if (err?.code === grpc.status.DEADLINE_EXCEEDED && /Deadline exceeded/.test(err.details)) hangs.push(m.path);
            if (err && /^internal error:/.test(err.details) && untyped.size < 20) untyped.add(`${m.path}: ${err.details.slice(0, 200)}`);
            resolve();
          },
        );
      });
    };

    const workers = Array.from({ length: 4 }, async () => {
      while (Date.now() < deadline && d.proc?.exitCode === null) await one();
    });
    await Promise.all(workers);
    console.log(`      ${calls} calls: ${[...codes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    assert.equal(d.proc?.exitCode, null, `berthd died:\n${d.output.slice(-2000)}`);
    assert.ok(calls > 50, `only ${calls} calls in ${SECONDS} s`);
    assert.deepEqual(hangs, [], 'calls that berthd never answered');
    assert.deepEqual([...untyped], [], 'handlers failing with untyped exceptions (INTERNAL "internal error: ...")');
    const v = await d.cri.runtime.Version({ version: 'v1' });
    assert.equal(v.runtimeName, 'berth');
    client.close();
  });
});
