// The pod network requests built from a pod record (CniManager's own types)
// and the adapter that hands them to the CNI manager unchanged.
import * as assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { cniPodNetwork, podNetworkRef, podNetworkSpec } from '../../src/sandbox/cni_adapter';
import type { CniManager } from '../../src/network/cni';
import type { SandboxRecord } from '../../src/sandbox/record';

function record(annotations: Record<string, string>): SandboxRecord {
  return {
    id: 'p1',
    metadata: { name: 'web', namespace: 'ns', uid: 'u', attempt: 0 },
    stateDir: '/run/berth/pods/p1',
    nsPaths: {},
    config: { annotations, portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 8080, hostIp: '' }], dnsConfig: null },
  } as unknown as SandboxRecord;
}

describe('sandbox → CNI requests and adapter', () => {
  it('builds the setup request with identity, netns, port mappings and the bandwidth annotations', () => {
    const rec = record({ 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1M' });
    assert.deepEqual(podNetworkSpec(rec, { net: '/run/x' }), {
      id: 'p1',
      name: 'web',
      namespace: 'ns',
      uid: 'u',
      netnsPath: '/run/x',
      portMappings: rec.config.portMappings,
      dns: null,
      bandwidth: { ingressRate: 10_000_000, egressRate: 1_000_000 },
      loopbackUp: true,
    });
    // Teardown needs no annotations (a bad one must not block it) and falls back to the pinned path.
    assert.deepEqual(podNetworkRef(record({ 'kubernetes.io/ingress-bandwidth': 'bogus' })), {
      id: 'p1',
      name: 'web',
      namespace: 'ns',
      uid: 'u',
      netnsPath: '/run/berth/pods/p1/ns/net',
    });
  });

  it('passes the requests to CNI and returns the pod IPs; times ADD and DEL and counts their failures', async () => {
    const registry = new Registry();
    const calls: unknown[] = [];
    const fake = {
      setup: async (pod: unknown, netnsPinned: Promise<void>, timed: <T>(add: () => Promise<T>) => Promise<T>) => {
        calls.push(pod);
        await netnsPinned;
        return timed(async () => ({ network: 'n', interfaces: [], ips: [{ ip: '10.0.0.2', prefixLength: 24, version: 4 }], result: {} }));
      },
      teardown: async (pod: unknown) => void calls.push(pod),
    } as unknown as CniManager;
    const metrics = new RuntimeMetrics(registry);
    const net = cniPodNetwork(fake, metrics);
    const spec = podNetworkSpec(record({}));
    assert.deepEqual(await net.setupPodNetwork(spec, Promise.resolve()), { ips: ['10.0.0.2'] });
    const ref = podNetworkRef(record({}));
    await net.teardownPodNetwork(ref);
    assert.equal(calls[0], spec);
    assert.equal(calls[1], ref);
    const failing = cniPodNetwork({ ...fake, teardown: () => Promise.reject(new Error('boom')) } as unknown as CniManager, metrics);
    await assert.rejects(failing.teardownPodNetwork(ref), /boom/);
    const text = await registry.metrics();
    assert.match(text, /^berth_cni_operation_duration_seconds_count\{operation="add"\} 1$/m);
    assert.match(text, /^berth_cni_operation_duration_seconds_count\{operation="del"\} 2$/m);
    assert.match(text, /^berth_cni_operation_failures_total\{operation="del"\} 1$/m);
    assert.match(text, /^berth_cni_operation_failures_total\{operation="add"\} 0$/m);
  });
});
