// A few soak cycles in CI (`make soak` runs 50): after a warm-up cycle, pod
// create → exec → logs → teardown on a CNI network leaves nothing behind.
import { strict as assert } from 'node:assert';
import { soak } from '../../bench/soak';

describe('soak: pod cycles leave nothing behind', function () {
  this.timeout(180_000);

  it('5 cycles grow no fds, mounts, cgroups, netns, iptables rules, CNI leases or processes', async () => {
    const lines: string[] = [];
    const { before, during, after } = await soak(5, (l) => lines.push(l));
    console.log(lines.map((l) => `      ${l}`).join('\n'));
    // The counters do see what a running pod holds (else "no growth" would prove nothing).
    for (const k of ['mounts', 'cgroups', 'netns', 'cniLeases', 'processes'] as const) {
      assert.ok(during[k] > before[k], `${k} did not count the running pod\n${lines.join('\n')}`);
    }
    const grew = (k: keyof typeof before): number => after[k] - before[k];
    // A descriptor or two may be open at the sample (a gRPC stream, a log file being closed).
    assert.ok(grew('fds') <= 2, lines.join('\n'));
    for (const k of ['mounts', 'cgroups', 'netns', 'iptablesRules', 'cniLeases', 'processes'] as const) {
      assert.ok(grew(k) <= 0, `${k} grew by ${grew(k)}\n${lines.join('\n')}`);
    }
    assert.ok(grew('rssMiB') < 64, lines.join('\n'));
  });
});
