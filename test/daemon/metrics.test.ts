// The opt-in event-loop delay gauge of the metrics registry.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { Metrics } from '../../src/metrics/metrics';

function gauge(body: string, stat: string): number | undefined {
  const m = new RegExp(`^berth_event_loop_delay_seconds\\{stat="${stat}"\\} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : undefined;
}

describe('metrics: berth_event_loop_delay_seconds', function () {
  it('is absent unless asked for', async () => {
    const m = new Metrics('test');
    try {
      assert.doesNotMatch(await m.registry.metrics(), /berth_event_loop_delay_seconds/);
    } finally {
      m.close();
    }
  });

  it('reports a blocked event loop in its maximum, per scrape window, and passes promtool', async () => {
    const m = new Metrics('test', { eventLoopDelay: true });
    try {
      await new Promise((r) => setTimeout(r, 50));
      const until = Date.now() + 200;
      while (Date.now() < until) {
        // block the loop
      }
      await new Promise((r) => setTimeout(r, 50));
      const body = await m.registry.metrics();
      for (const stat of ['p50', 'p90', 'p99', 'max']) assert.notEqual(gauge(body, stat), undefined, `${stat} is served`);
      const max = gauge(body, 'max') ?? 0;
      assert.ok(max >= 0.1, `a 200 ms block shows in the maximum (got ${max} s)`);
      assert.ok((gauge(body, 'p50') ?? 1) <= max, 'the median is not above the maximum');
      // The next scrape is a new window: the block is no longer in it.
      await new Promise((r) => setTimeout(r, 50));
      const next = gauge(await m.registry.metrics(), 'max') ?? 0;
      assert.ok(next < max, `the next window does not hold the earlier block (${next} s vs ${max} s)`);
      const promtool = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
      if (promtool.error) throw new Error(`promtool missing (apt-get install prometheus): ${promtool.error.message}`);
      assert.equal(promtool.status, 0, `promtool check metrics failed:\n${promtool.stdout}${promtool.stderr}`);
    } finally {
      m.close();
    }
  });
});
