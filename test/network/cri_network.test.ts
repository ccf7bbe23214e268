// The CRI side of networking: Status's NetworkReady condition and
// UpdateRuntimeConfig's pod CIDR, through the real handlers.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultConfig } from '../../src/config/config';
import type { CriContext } from '../../src/cri/context';
import { HANDLERS } from '../../src/cri/handlers';
import { status } from '../../src/cri/status';
import { updateRuntimeConfig } from '../../src/cri/update_runtime_config';
import { CniManager } from '../../src/network/cni';
import { testCriContext } from '../helpers/cri_context';

describe('network/CRI Status NetworkReady and UpdateRuntimeConfig', () => {
  let dir: string;
  let ctx: CriContext;
  let network: CniManager;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cri-net-'));
    const config = defaultConfig();
    config.root = path.join(dir, 'root');
    config.state = path.join(dir, 'state');
    config.cni.conf_dir = path.join(dir, 'net.d');
    config.cni.bin_dirs = ['/usr/lib/cni'];
    network = CniManager.fromConfig(config);
    ctx = testCriContext({ config, network });
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const networkReady = async (c: CriContext) => {
    const res = await status(c, { verbose: true });
    const cond = res.status?.conditions?.find((x) => x.type === 'NetworkReady');
    assert.ok(cond);
    return { cond, info: JSON.parse(res.info?.cniConfig ?? 'null') as Record<string, unknown> };
  };

  it('NetworkReady is false with NetworkPluginNotReady while the conf dir is empty, true once a config appears', async () => {
    let { cond } = await networkReady(ctx);
    assert.equal(cond.status, false);
    assert.equal(cond.reason, 'NetworkPluginNotReady');
    assert.match(cond.message ?? '', /no CNI network config found/);

    fs.mkdirSync(ctx.config.cni.conf_dir);
    fs.writeFileSync(
      path.join(ctx.config.cni.conf_dir, '10-x.conflist'),
      JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'bridge' }] }),
    );
    const after = await networkReady(ctx);
    cond = after.cond;
    assert.equal(cond.status, true);
    assert.equal(cond.reason, '');
    assert.equal(after.info.network, 'x');
  });

  it('UpdateRuntimeConfig sets the pod CIDR, ignores an absent network config and rejects a malformed one', async () => {
    assert.equal(HANDLERS.UpdateRuntimeConfig, updateRuntimeConfig);
    await updateRuntimeConfig(ctx, { runtimeConfig: { networkConfig: { podCidr: '10.90.3.0/24' } } });
    assert.equal(network.podCidr(), '10.90.3.0/24');
    await updateRuntimeConfig(ctx, { runtimeConfig: null });
    assert.equal(network.podCidr(), '10.90.3.0/24');
    await updateRuntimeConfig(ctx, { runtimeConfig: { networkConfig: { podCidr: '10.90.3.0/24,fd00:10:90::/64' } } });
    assert.equal(network.podCidr(), '10.90.3.0/24,fd00:10:90::/64');
    await assert.rejects(
      updateRuntimeConfig(ctx, { runtimeConfig: { networkConfig: { podCidr: 'not-a-cidr' } } }),
      (err: unknown) => (err as { kind?: string }).kind === 'INVALID_ARGUMENT',
    );
    assert.equal((await networkReady(ctx)).info.podCidr, '10.90.3.0/24,fd00:10:90::/64');
  });
});
