// The pure parts of the CNI code: config validation, result conversion
// across spec versions, the per-plugin stdin config, and chain naming.
import { strict as assert } from 'node:assert';
import { parseNetworkConfig } from '../../src/network/cni_config';
import { parseResult, podIps } from '../../src/network/cni_result';
import { pluginStdin } from '../../src/network/cni';
import { masqChainName } from '../../src/network/ipmasq_cleanup';
import { bandwidthFromAnnotations } from '../../src/network/bandwidth';

describe('network/CNI config, results and plugin input', () => {
  it('wraps a single plugin conf into a list and validates lists', () => {
    const single = parseNetworkConfig({ cniVersion: '0.4.0', name: 'n', type: 'bridge', bridge: 'b0' });
    assert.equal(single.plugins.length, 1);
    assert.equal(single.plugins[0]!.type, 'bridge');
    assert.equal(single.plugins[0]!.bridge, 'b0');
    assert.throws(() => parseNetworkConfig({ cniVersion: '1.0.0', name: 'n', plugins: [] }), /non-empty/);
    assert.throws(() => parseNetworkConfig({ cniVersion: '1.0.0', name: 'bad name', plugins: [{ type: 'x' }] }), /name/);
    assert.throws(() => parseNetworkConfig({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../evil' }] }), /type/);
    assert.throws(() => parseNetworkConfig({ name: 'n', plugins: [{ type: 'x' }] }), /cniVersion/);
    assert.throws(() => parseNetworkConfig({ cniVersion: '0.2.0', name: 'n', type: 'x' }), /not supported/);
    assert.equal(parseNetworkConfig({ cniVersion: '1.0.0', name: 'n', disableCheck: true, plugins: [{ type: 'x' }] }).disableCheck, true);
  });

  it('converts 0.3.1/0.4.0 and 1.0.0 results to one form', () => {
    const old = parseResult(
      {
        cniVersion: '0.3.1',
        interfaces: [{ name: 'br0', mac: 'aa' }, { name: 'eth0', mac: 'bb', sandbox: '/run/netns/x' }],
        ips: [
          { version: '4', interface: 1, address: '10.90.0.5/16', gateway: '10.90.0.1' },
          { version: '6', interface: 1, address: 'fd00::5/64' },
          { version: '4', interface: 0, address: '10.90.0.1/16' },
        ],
        routes: [{ dst: '0.0.0.0/0' }],
        dns: { nameservers: ['10.96.0.10'] },
      },
      '0.3.1',
    );
    assert.deepEqual(old.ips[0], { ip: '10.90.0.5', prefixLength: 16, version: 4, gateway: '10.90.0.1', interface: 1 });
    assert.equal(old.ips[1]!.version, 6);
    // The bridge's own address is not the pod's.
    assert.deepEqual(podIps(old).map((i) => i.ip), ['10.90.0.5', 'fd00::5']);
    assert.deepEqual(old.dns, { nameservers: ['10.96.0.10'] });

    const v1 = parseResult({ cniVersion: '1.0.0', ips: [{ address: '10.90.0.7/16' }] }, '1.0.0');
    assert.deepEqual(podIps(v1), [{ ip: '10.90.0.7', prefixLength: 16, version: 4 }]);
    assert.throws(() => parseResult({ ips: [{ address: '10.90.0.300/16' }] }, '1.0.0'), /not an IP/);
    assert.throws(() => parseResult({ ips: [{ address: '10.90.0.3/40' }] }, '1.0.0'), /prefix/);
    assert.throws(() => parseResult({ cniVersion: '0.2.0', ip4: {} }, '0.2.0'), /not supported/);
  });

  it('gives each plugin runtimeConfig only for the capabilities it declares, plus name, version and prevResult', () => {
    const list = parseNetworkConfig({
      cniVersion: '1.0.0',
      name: 'net',
      plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true, bandwidth: false } }],
    });
    const caps = {
      portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }],
      bandwidth: { ingressRate: 1000, ingressBurst: 1 },
    };
    const bridge = pluginStdin(list, list.plugins[0]!, caps, undefined);
    assert.deepEqual(bridge, { type: 'bridge', name: 'net', cniVersion: '1.0.0' });
    const prev = { cniVersion: '1.0.0', ips: [] };
    const portmap = pluginStdin(list, list.plugins[1]!, caps, prev);
    assert.deepEqual(portmap.runtimeConfig, { portMappings: caps.portMappings });
    assert.deepEqual(portmap.prevResult, prev);
    assert.equal(portmap.name, 'net');
  });

  it('names ipMasq chains like the plugins do', () => {
    // Value taken from the bridge plugin's own rules for network "cniexp", container "abc123".
    assert.equal(masqChainName('cniexp', 'abc123'), 'CNI-36a80b4f6bf358b13a038fb4');
  });

  it('reads bandwidth limits from the kubernetes.io annotations', () => {
    assert.equal(bandwidthFromAnnotations({ other: 'x' }), undefined);
    assert.deepEqual(bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': '10M' }), { ingressRate: 10_000_000 });
    assert.deepEqual(
      bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': '1.5k', 'kubernetes.io/egress-bandwidth': '1Mi' }),
      { ingressRate: 1500, egressRate: 1048576 },
    );
    assert.throws(() => bandwidthFromAnnotations({ 'kubernetes.io/egress-bandwidth': 'fast' }), /not a quantity/);
    assert.throws(() => bandwidthFromAnnotations({ 'kubernetes.io/egress-bandwidth': '10' }), /range/);
  });
});
