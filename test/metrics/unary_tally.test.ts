// A unary method's tally hands prom-client exactly what direct updates
// would have recorded, at every read, and never holds more than its bound.
import * as assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics/metrics';
import { MAX_PENDING_DURATIONS } from '../../src/metrics/unary_tally';

describe('UnaryTally', () => {
  it('gives every read the series direct prom-client updates give', async () => {
    const metrics = new Metrics('test', { processMetrics: false });
    // The same calls recorded straight into a second registry's series.
    const direct = new Metrics('test', { processMetrics: false });
    const tally = metrics.unaryTally('runtime.v1.RuntimeService', 'ListContainers');
    const labels = tally.labels;
    const durations = [0.0004, 0.002, 0.002, 0.03, 0.7, 150];
    for (const [i, s] of durations.entries()) {
      tally.begin();
      direct.started.inc(labels);
      const code = i === 3 ? 'Unavailable' : 'OK';
      tally.end(code, s);
      direct.handled.inc({ ...labels, grpc_code: code });
      direct.handling.observe(labels, s);
    }
    tally.begin(); // one still in flight
    direct.started.inc(labels);
    const grpcLines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('grpc_'));
    assert.deepEqual(grpcLines(await metrics.registry.metrics()), grpcLines(await direct.registry.metrics()));
    assert.ok(grpcLines(await direct.registry.metrics()).length > 10);
    // Read again with nothing new: the same figures, nothing counted twice.
    assert.deepEqual(grpcLines(await metrics.registry.metrics()), grpcLines(await direct.registry.metrics()));
  });

  it('hands its durations over once it holds its bound, scraped or not', async () => {
    const metrics = new Metrics('test', { processMetrics: false });
    const tally = metrics.unaryTally('runtime.v1.RuntimeService', 'Version');
    for (let i = 0; i < MAX_PENDING_DURATIONS - 1; i++) tally.end('OK', 0.001);
    assert.equal(tally.pendingDurations, MAX_PENDING_DURATIONS - 1, 'held below the bound');
    tally.end('OK', 0.001);
    assert.equal(tally.pendingDurations, 0, 'handed over at the bound');
    assert.match(await metrics.registry.metrics(), new RegExp(`^grpc_server_handling_seconds_count\\{.*grpc_method="Version"\\} ${MAX_PENDING_DURATIONS}$`, 'm'));
  });
});
