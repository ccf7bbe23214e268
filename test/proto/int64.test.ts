import * as assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../../src/proto';
import { PROTO_PATH } from '../../src/proto_descriptor';

// int64 fields must survive decode/encode exactly, including values above 2^53
// that a JavaScript number would round.
describe('CRI proto int64 fields', () => {
  const def = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const containerStatus = def['runtime.v1.RuntimeService'] as protoLoader.ServiceDefinition;
  const method = containerStatus.ContainerStatus;

  it('round-trip values above 2^53 exactly', () => {
    const big = '9223372036854775807'; // max int64
    const above53 = '9007199254740993'; // 2^53 + 1, not representable as a double
    const negative = '-9223372036854775808';
    const msg = {
      status: { id: 'c1', createdAt: big, startedAt: above53, finishedAt: negative, exitCode: 3 },
      info: {},
    };
    const bytes = method.responseSerialize(msg);
    const decoded = method.responseDeserialize(bytes) as { status: { createdAt: string; startedAt: string; finishedAt: string } };
    assert.equal(decoded.status.createdAt, big);
    assert.equal(decoded.status.startedAt, above53);
    assert.equal(decoded.status.finishedAt, negative);
    // Re-encoding what was decoded gives the same values again.
    const again = method.responseDeserialize(method.responseSerialize(decoded));
    assert.deepEqual(again, decoded);
  });

  it('keep uint64 sizes exact', () => {
    const images = (def['runtime.v1.ImageService'] as protoLoader.ServiceDefinition).ListImages;
    const size = '18446744073709551615'; // max uint64
    const bytes = images.responseSerialize({ images: [{ id: 'sha256:x', size }] });
    const decoded = images.responseDeserialize(bytes) as { images: Array<{ size: string }> };
    assert.equal(decoded.images[0].size, size);
  });

  it('keep the upstream field numbers (spot checks against k8s.io/cri-api)', () => {
    const bytes = method.responseSerialize({ status: { id: 'x', exitCode: 1 } });
    // status = field 1 (length-delimited) -> tag 0x0a; id = field 1 -> 0x0a; exit_code = field 7 varint -> 0x38
    assert.equal(bytes[0], 0x0a);
    assert.ok(Buffer.from(bytes).includes(Buffer.from([0x38, 0x01])));
  });
});
