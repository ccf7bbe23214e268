// A pod sandbox on a real CNI network (bridge + host-local) through the
// CniManager adapter: the pinned netns gets eth0 with a leased IP, and
// StopPodSandbox gives the lease and the veth back.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CniManager } from '../../src/network/cni';
import { cniPodNetwork } from '../../src/sandbox/cni_adapter';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';
import type { SandboxService } from '../../src/sandbox/service';
import { TestNetwork } from '../network/net_helpers';
import { nsenter, podConfig, runPod, SandboxFixture } from './fixture';

describe('sandbox with a CNI network', function () {
  this.timeout(60_000);
  const fx = new SandboxFixture();
  let net: TestNetwork;
  let svc: SandboxService;
  let manager: CniManager;

  before(async () => {
    await fx.init();
    net = new TestNetwork();
    net.writeConflist({ plugins: [net.bridgePlugin()] });
    manager = net.manager();
    svc = await fx.service({ network: cniPodNetwork(manager, new RuntimeMetrics(new Registry())) });
  });

  after(async () => {
    const left = await fx.cleanup();
    await net?.cleanup();
    assert.deepEqual(left, []);
  });

  it('attaches the pinned netns on run and detaches it on stop', async () => {
    const id = await runPod(svc, podConfig({ hostname: 'netpod' }, 'netpod'), '');
    const rec = svc.get(id);
    const prefix = net.subnet.split('.').slice(0, 3).join('.') + '.';
    assert.ok(rec.network.ip.startsWith(prefix), `pod IP ${rec.network.ip} not in ${net.subnet}`);
    const addrs = nsenter([`--net=${rec.nsPaths.net}`, 'ip', '-o', '-4', 'addr', 'show']);
    assert.match(addrs, new RegExp(`eth0\\s+inet ${rec.network.ip.replace(/\./g, '\\.')}/`));
    assert.match(addrs, /lo\s+inet 127\.0\.0\.1/);
    assert.match(fs.readFileSync(rec.hostsFile, 'utf8'), new RegExp(`^${rec.network.ip.replace(/\./g, '\\.')}\\tnetpod$`, 'm'));
    assert.equal(net.leases().length, 1);
    assert.equal((await net.bridgePorts()).length, 1);

    await svc.stop(id);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    await svc.stop(id); // teardown is not repeated once done
    await svc.remove(id);
    assert.deepEqual(svc.list(), []);
  });

  /** Nothing of a pod that failed to start: no attachment record, lease, veth, pod directory or mount. */
  async function assertNothingLeft(): Promise<void> {
    assert.deepEqual(await manager.attachedPodIds(), [], 'CNI attachment records');
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(fs.readdirSync(path.join(fx.config.state, 'pods')).filter((n) => !n.startsWith('.')), []);
    assert.deepEqual(fx.mountsUnderDir().filter((m) => m !== path.join(fx.config.state, 'pods')), []);
  }

  it('rolls back a network prepared beside a pinning that fails', async () => {
    const cfg = podConfig({}, 'pinfails');
    cfg.linux!.sysctls = { 'net.ipv4.no_such_sysctl': '1' };
    cfg.linux!.securityContext!.namespaceOptions!.pid = 'POD';
    await assert.rejects(runPod(svc, cfg, ''), /pin the pod namespaces.*no_such_sysctl/);
    await assertNothingLeft();
  });

  it('detaches a network attached beside a step that fails', async () => {
    const blocker = path.join(fx.dir, 'not-a-dir');
    fs.writeFileSync(blocker, '');
    const cfg = podConfig({ logDirectory: path.join(blocker, 'logs') }, 'logdirfails');
    await assert.rejects(runPod(svc, cfg, ''), /create the log directory/);
    await assertNothingLeft();
    // The name is free again and the network usable.
    cfg.logDirectory = '';
    const id = await runPod(svc, cfg, '');
    assert.equal(net.leases().length, 1);
    await svc.remove(id);
    await assertNothingLeft();
  });
});
