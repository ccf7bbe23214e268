// CniManager against the real Debian CNI plugins (bridge, host-local,
// portmap, loopback) in real network namespaces. Needs root.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniManager } from '../../src/network/cni';
import { BerthError } from '../../src/errors';
import { TestNetwork, httpGet, mustSh, readSysctl, sh, hex } from './net_helpers';

describe('network/CniManager with real plugins', function () {
  this.timeout(30_000);
  let net: TestNetwork;
  let ipForward: string;

  before(async () => {
    ipForward = await readSysctl('net.ipv4.ip_forward');
  });
  after(async () => {
    // The bridge plugin (isGateway) turns forwarding on host-wide; put it back as it was.
    await fs.promises.writeFile('/proc/sys/net/ipv4/ip_forward', ipForward);
  });
  beforeEach(() => {
    net = new TestNetwork();
  });
  afterEach(async () => {
    await net.cleanup();
  });

  it('ADD gives the pod an address the host reaches, loopback up, hostPort on 127.0.0.1, and DEL removes it all', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod('web');
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const res = await mgr.setup({
      ...pod,
      portMappings: [{ protocol: 'TCP', containerPort: 8080, hostPort, hostIp: '' }],
    });
    assert.equal(res.network, net.network);
    assert.equal(res.ips.length, 1);
    const ip = res.ips[0]!;
    assert.equal(ip.version, 4);
    assert.ok(ip.ip.startsWith(`10.91.${net.octet}.`), ip.ip);
    assert.equal(ip.gateway, `10.91.${net.octet}.1`);
    assert.equal(ip.prefixLength, 24);
    const eth0 = res.interfaces.find((i) => i.name === 'eth0');
    assert.equal(eth0?.sandbox, pod.netnsPath);

    // Loopback is up though the list has no loopback plugin.
    const lo = await mustSh('ip', ['-n', path.basename(pod.netnsPath), '-o', 'link', 'show', 'lo']);
    assert.match(lo, /<LOOPBACK,UP/);

    net.serveHttp(pod.netnsPath, 'hello from web');
    assert.equal(await httpGet(ip.ip, 8080), 'hello from web');
    // portmap DNATs locally originated traffic too, and sets route_localnet on the bridge so 127.0.0.1 works.
    assert.equal(await httpGet('127.0.0.1', hostPort), 'hello from web');
    assert.equal(await readSysctl(`net.ipv4.conf.${net.bridge}.route_localnet`), '1');

    assert.equal(net.leases().length, 1);
    assert.ok((await net.iptablesMentioning(pod.id)).length > 0, 'ipMasq/portmap rules exist while attached');
    const hostVeths = await net.bridgePorts();
    assert.equal(hostVeths.length, 1);
    assert.deepEqual(await mgr.attachedPodIds(), [pod.id], 'attachment record cached');

    await mgr.teardown(pod);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.notEqual((await sh('ip', ['link', 'show', hostVeths[0]!])).code, 0, 'host veth is gone');
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.deepEqual(await net.iptablesMentioning(ip.ip + '/'), []);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(fs.readdirSync(net.cacheDir), []);
    assert.deepEqual(await mgr.attachedPodIds(), []);

    // Idempotent.
    await mgr.teardown(pod);
  });

  it('two pods on the network reach each other', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const a = await net.pod('a');
    const b = await net.pod('b');
    const [ra, rb] = await Promise.all([mgr.setup(a), mgr.setup(b)]);
    assert.notEqual(ra.ips[0]!.ip, rb.ips[0]!.ip);
    net.serveHttp(b.netnsPath, 'b says hi');
    await httpGet(rb.ips[0]!.ip, 8080); // wait until it serves
    // (Debian's static busybox wget crashes; node is a dependable client.)
    const client = `require('http').get('http://${rb.ips[0]!.ip}:8080/index.html', (r) => r.pipe(process.stdout)).on('error', (e) => { console.error(e.message); process.exit(1); })`;
    const got = await mustSh('ip', ['netns', 'exec', path.basename(a.netnsPath), process.execPath, '-e', client]);
    assert.equal(got, 'b says hi');
    await Promise.all([mgr.teardown(a), mgr.teardown(b)]);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.iptablesMentioning(net.network), []);
    assert.deepEqual(await net.bridgePorts(), []);
  });

  it('DEL after the netns was deleted still releases the lease, portmap and ipMasq rules', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod();
    const res = await mgr.setup({ ...pod, portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 20000 + Math.floor(Math.random() * 20000), hostIp: '' }] });
    assert.ok((await net.iptablesMentioning(pod.id)).length > 0);
    await mustSh('ip', ['netns', 'del', path.basename(pod.netnsPath)]);
    await mgr.teardown(pod);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.deepEqual(await net.iptablesMentioning(res.ips[0]!.ip + '/'), []);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    await mgr.teardown(pod);
  });

  it('teardown after a restart uses the cached config even when the conf dir changed', async () => {
    const file = net.writeConflist();
    const pod = await net.pod();
    await net.manager().setup(pod);
    fs.rmSync(file);
    // A new manager (berthd restarted) with an empty conf dir: the record alone drives DEL.
    const restarted = net.manager();
    assert.equal(restarted.status().ready, false);
    await restarted.teardown(pod);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
  });

  it('a record left by a crash during ADD (no result saved yet) still drives a complete DEL', async () => {
    net.writeConflist();
    const pod = await net.pod();
    await net.manager().setup(pod);
    // What berthd leaves when it dies after the plugins ran but before the result was saved.
    const [recordFile] = fs.readdirSync(net.cacheDir);
    const record = JSON.parse(fs.readFileSync(path.join(net.cacheDir, recordFile!), 'utf8')) as { result: unknown };
    record.result = null;
    fs.writeFileSync(path.join(net.cacheDir, recordFile!), JSON.stringify(record));
    await net.manager().teardown(pod);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.deepEqual(fs.readdirSync(net.cacheDir), []);
  });

  it('a missing plugin fails ADD naming it, and what earlier plugins did is undone', async () => {
    net.writeConflist({ plugins: [net.bridgePlugin(), { type: 'berth-no-such-plugin' }] });
    const mgr = net.manager();
    assert.equal(mgr.status().ready, false);
    assert.match(mgr.status().message, /berth-no-such-plugin/);
    const pod = await net.pod();
    await assert.rejects(mgr.setup(pod), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.match(err.message, /CNI plugin "berth-no-such-plugin" ADD: plugin binary not found/);
      assert.match(err.message, new RegExp(pod.id));
      return true;
    });
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.deepEqual(fs.readdirSync(net.cacheDir), []);
  });

  it('a plugin error is reported with the plugin name and its CNI message, and nothing leaks', async () => {
    // A broken IPAM subnet: host-local fails inside bridge's ADD.
    const bridge = net.bridgePlugin();
    (bridge.ipam as { ranges: unknown }).ranges = [[{ subnet: '10.91.300.0/24' }]];
    net.writeConflist({ plugins: [bridge, { type: 'portmap', capabilities: { portMappings: true } }] });
    const mgr = net.manager();
    const pod = await net.pod();
    await assert.rejects(mgr.setup(pod), (err: unknown) => {
      assert.ok(err instanceof BerthError);
      assert.match(err.message, /CNI plugin "bridge" ADD failed: .*10\.91\.300\.0\/24/);
      return true;
    });
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.deepEqual(fs.readdirSync(net.cacheDir), []);
  });

  it('CHECK passes on a healthy pod and fails, naming the plugin, when its interface is gone', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod();
    await mgr.setup(pod);
    await mgr.check(pod);
    await mustSh('ip', ['-n', path.basename(pod.netnsPath), 'link', 'del', 'eth0']);
    await assert.rejects(mgr.check(pod), /CNI plugin "bridge" CHECK failed/);
    // DEL with the interface gone: bridge cannot see the address, berth still removes its ipMasq chain.
    await mgr.teardown(pod);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    await assert.rejects(mgr.check(pod), (err: unknown) => err instanceof BerthError && err.kind === 'NOT_FOUND');
  });

  for (const version of ['0.3.1', '0.4.0']) {
    it(`drives a cniVersion ${version} list and converts its result`, async () => {
      net.writeConflist({ cniVersion: version });
      const mgr = net.manager();
      const pod = await net.pod();
      const res = await mgr.setup(pod);
      assert.equal(res.result.cniVersion, version);
      assert.equal(res.ips.length, 1);
      assert.equal(res.ips[0]!.version, 4);
      if (version === '0.4.0') await mgr.check(pod);
      await mgr.teardown(pod);
      assert.deepEqual(net.leases(), []);
      assert.deepEqual(await net.iptablesMentioning(pod.id), []);
      assert.deepEqual(await net.bridgePorts(), []);
    });
  }

  it('allocates from the pod CIDR given by UpdateRuntimeConfig to plugins with the ipRanges capability', async () => {
    // host-local puts runtimeConfig ranges before its own, so a list using ipRanges configures none itself.
    const bridge = net.bridgePlugin({ capabilities: { ipRanges: true } });
    delete (bridge.ipam as Record<string, unknown>).ranges;
    net.writeConflist({ plugins: [bridge, { type: 'portmap', capabilities: { portMappings: true } }] });
    const mgr = net.manager();
    mgr.setPodCidr(`10.91.${net.octet}.128/25`);
    const pod = await net.pod();
    const res = await mgr.setup(pod);
    const last = Number(res.ips[0]!.ip.split('.')[3]);
    assert.ok(last > 128, res.ips[0]!.ip);
    await mgr.teardown(pod);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    assert.throws(() => mgr.setPodCidr('10.0.0.0/99'), /pod CIDR/);
  });

  it('the shipped deploy/cni example works (bridge, host-local, portmap, loopback)', async () => {
    const example = JSON.parse(
      fs.readFileSync(path.join(__dirname, '..', '..', '..', 'deploy', 'cni', '10-berth-bridge.conflist'), 'utf8'),
    ) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
    assert.equal(example.cniVersion, '1.0.0');
    assert.deepEqual(example.plugins.map((p) => p.type), ['bridge', 'portmap', 'loopback']);
    // Same list on a private bridge, subnet and IPAM dir.
    const bridge = example.plugins[0]!;
    bridge.bridge = net.bridge;
    (bridge.ipam as Record<string, unknown>).ranges = [[{ subnet: net.subnet }]];
    (bridge.ipam as Record<string, unknown>).dataDir = net.ipamDir;
    net.writeConflist({ plugins: example.plugins });
    const mgr = net.manager();
    assert.deepEqual(mgr.status().ready, true);
    const pod = await net.pod();
    const res = await mgr.setup(pod);
    assert.equal(res.ips.length, 1, 'the loopback plugin passes the bridge result through');
    const lo = await mustSh('ip', ['-n', path.basename(pod.netnsPath), '-o', 'link', 'show', 'lo']);
    assert.match(lo, /<LOOPBACK,UP/);
    net.serveHttp(pod.netnsPath, 'example');
    assert.equal(await httpGet(res.ips[0]!.ip, 8080), 'example');
    await mgr.teardown(pod);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
  });

  it('passes bandwidth limits to the bandwidth plugin and DEL removes its shaping', async () => {
    net.writeConflist({ plugins: [net.bridgePlugin(), { type: 'bandwidth', capabilities: { bandwidth: true } }] });
    const mgr = net.manager();
    const pod = await net.pod();
    const ifbs = async () => (await mustSh('ip', ['-o', 'link', 'show', 'type', 'ifb'])).split('\n').map((l) => l.split(':')[1]?.trim() ?? '');
    const ifbBefore = await ifbs();
    await mgr.setup({ ...pod, bandwidth: { ingressRate: 1_000_000, egressRate: 2_000_000 } });
    const [veth] = await net.bridgePorts();
    assert.ok(veth);
    // Ingress (towards the pod) is a tbf on the host-side veth; egress is redirected to an ifb device of the pod.
    assert.match(await mustSh('tc', ['qdisc', 'show', 'dev', veth]), /tbf .*rate 1Mbit/);
    const podIfb = (await ifbs()).filter((n) => !ifbBefore.includes(n));
    assert.equal(podIfb.length, 1);
    await mgr.teardown(pod);
    assert.ok(!(await ifbs()).includes(podIfb[0]!), 'the egress ifb device is removed');
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
  });

  it('refuses a netns path that is not a network namespace, and keeps no attachment record', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const notNs = path.join(net.dir, 'not-a-netns');
    fs.writeFileSync(notNs, '');
    const id = hex(32);
    await assert.rejects(
      mgr.setup({ id, name: 'x', namespace: 'default', uid: 'u', netnsPath: notNs }),
      (err: unknown) => err instanceof BerthError && err.kind === 'INVALID_ARGUMENT',
    );
    assert.deepEqual(await mgr.attachedPodIds(), []);
  });

  it('prepares the attachment while the netns is being pinned, and runs the plugins only once it is', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod();
    let pinned!: () => void;
    const netnsPinned = new Promise<void>((resolve) => (pinned = resolve));
    const setup = mgr.setup(pod, netnsPinned);
    // The record is written before any ADD (so a crash from here on can DEL); no plugin has run yet.
    for (let i = 0; i < 200 && !(await mgr.attachedPodIds()).includes(pod.id); i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(await mgr.attachedPodIds(), [pod.id]);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    pinned();
    const res = await setup;
    assert.equal(net.leases().length, 1);
    assert.equal((await net.bridgePorts()).length, 1);
    assert.ok(res.ips[0]?.ip.startsWith(`10.91.${net.octet}.`));
    await mgr.teardown(pod);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await mgr.attachedPodIds(), []);
  });

  it('fails with the pinning failure when the netns cannot be pinned: no plugin run, no record kept', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod();
    const timedCalls: string[] = [];
    const pinFailure = new Error('berth-pinns: unshare: Operation not permitted');
    await assert.rejects(
      mgr.setup(pod, Promise.reject(pinFailure), (add) => {
        timedCalls.push('add');
        return add();
      }),
      (err: unknown) => err === pinFailure,
    );
    assert.deepEqual(timedCalls, [], 'no ADD was timed (none ran)');
    assert.deepEqual(await mgr.attachedPodIds(), []);
    assert.deepEqual(net.leases(), []);
    assert.deepEqual(await net.bridgePorts(), []);
    assert.deepEqual(await net.iptablesMentioning(pod.id), []);
  });

  it('accepts /proc/PID/ns/net as the netns path', async () => {
    net.writeConflist();
    const mgr = net.manager();
    const pod = await net.pod();
    // A process living in the netns; its /proc link is another handle to the same namespace.
    const { spawn } = await import('node:child_process');
    const sleeper = spawn('ip', ['netns', 'exec', path.basename(pod.netnsPath), 'sleep', '30'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const procPath = `/proc/${sleeper.pid}/ns/net`;
      const res = await mgr.setup({ ...pod, netnsPath: procPath });
      const addr = await mustSh('ip', ['-n', path.basename(pod.netnsPath), '-o', '-4', 'addr', 'show', 'eth0']);
      assert.ok(addr.includes(res.ips[0]!.ip));
      await mgr.teardown(pod);
      assert.deepEqual(net.leases(), []);
      assert.deepEqual(await net.iptablesMentioning(pod.id), []);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});

describe('network/CniManager status', () => {
  let net: TestNetwork;
  beforeEach(() => {
    net = new TestNetwork();
  });
  afterEach(async () => {
    await net.cleanup();
  });

  it('is not ready without a config, ready as soon as one appears, and notices edits', () => {
    const mgr = net.manager();
    assert.deepEqual(mgr.status().ready, false);
    assert.match(mgr.status().message, /no CNI network config found/);
    const file = net.writeConflist();
    assert.equal(mgr.status().ready, true);
    assert.match(mgr.status().message, new RegExp(net.network));
    fs.writeFileSync(file, '{"cniVersion":"1.0.0","name":"x"');
    assert.equal(mgr.status().ready, false);
    assert.match(mgr.status().message, /invalid CNI config/);
    fs.rmSync(file);
    assert.equal(mgr.status().ready, false);
  });

  it('wraps a single .conf into a list and picks the first file by name', async () => {
    const mgr = net.manager();
    fs.writeFileSync(path.join(net.confDir, '20-b.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'second', type: 'bridge' }));
    fs.writeFileSync(path.join(net.confDir, '10-a.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'first', type: 'bridge' }));
    fs.writeFileSync(path.join(net.confDir, '00-ignored.txt'), 'x');
    assert.match(mgr.status().message, /network "first"/);
    assert.equal(mgr.info().network, 'first');
  });

  it('reports unsupported cniVersions and missing plugin binaries', () => {
    const mgr = new CniManager({ binDirs: ['/nonexistent-bin'], confDir: net.confDir, cacheDir: net.cacheDir });
    net.writeConflist();
    assert.match(mgr.status().message, /bridge, portmap, loopback .* not found in \/nonexistent-bin/);
    net.writeConflist({ cniVersion: '0.2.0' });
    assert.match(mgr.status().message, /cniVersion 0\.2\.0 is not supported/);
  });

  it('setup fails with FAILED_PRECONDITION while there is no config', async () => {
    const mgr = net.manager();
    const pod = await net.pod();
    await assert.rejects(mgr.setup(pod), (err: unknown) => err instanceof BerthError && err.kind === 'FAILED_PRECONDITION');
    // Teardown of a pod never attached is a no-op.
    await mgr.teardown(pod);
  });
});
