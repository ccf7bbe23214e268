import * as assert from 'node:assert/strict';
import { cniPodNetwork } from '../../src/sandbox/cni_adapter';
import type { CniManager } from '../../src/network/cni';

describe('sandbox → CNI adapter', () => {
  it('passes the pod identity, port mappings and the bandwidth annotations to CNI', async () => {
    const calls: unknown[] = [];
    const fake = {
      setup: async (pod: unknown) => {
        calls.push(pod);
        return { network: 'n', interfaces: [], ips: [{ ip: '10.0.0.2', prefixLength: 24, version: '4' }], result: {} };
      },
      teardown: async (pod: unknown) => {
        calls.push(pod);
      },
    } as unknown as CniManager;
    const net = cniPodNetwork(fake);
    const res = await net.setupPodNetwork({
      id: 'p1',
      name: 'web',
      namespace: 'ns',
      uid: 'u',
      netnsPath: '/run/x',
      labels: {},
      annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1M' },
      portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '' }],
      cgroupParent: '',
      dns: null,
    });
    assert.deepEqual(res.ips, ['10.0.0.2']);
    const setup = calls[0] as { bandwidth: unknown; portMappings: unknown[]; netnsPath: string };
    assert.deepEqual(setup.bandwidth, { ingressRate: 10_000_000, egressRate: 1_000_000 });
    assert.equal(setup.portMappings.length, 1);
    assert.equal(setup.netnsPath, '/run/x');
  });
});
