// SIGHUP: berthd re-reads its config file and drop-ins, applies what can
// change in place and names the changed keys that need a restart.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultConfig } from '../../src/config/config';
import { changedKeys, isReloadable } from '../../src/daemon/reload';
import { TestBerthd } from '../helpers/berthd';
import { NotifySocket } from '../helpers/notify_socket';

describe('config reload (SIGHUP)', function () {
  this.timeout(60_000);

  it('lists changed keys by name, entries of maps included, and knows which reload in place', () => {
    const a = defaultConfig();
    const b = defaultConfig();
    b.log.level = 'debug';
    b.streaming.port = 1;
    b.image.credentials = { 'reg.example': { username: 'u', password: 'p', auth: '', identity_token: '', registry_token: '' } };
    b.runtime.handlers.kata = { path: '/k', root: '' };
    const keys = changedKeys(a, b);
    assert.deepEqual(keys, [
      'image.credentials.reg.example.auth',
      'image.credentials.reg.example.identity_token',
      'image.credentials.reg.example.password',
      'image.credentials.reg.example.registry_token',
      'image.credentials.reg.example.username',
      'log.level',
      'runtime.handlers.kata.path',
      'runtime.handlers.kata.root',
      'streaming.port',
    ]);
    assert.deepEqual(keys.filter((k) => !isReloadable(k)), ['runtime.handlers.kata.path', 'runtime.handlers.kata.root', 'streaming.port']);
    assert.ok(['image.pinned_images', 'image.registry_config_dir', 'cni.conf_dir'].every(isReloadable));
  });

  it('applies log level, pinned images, registry dir and credentials, CNI dir; reports the rest; survives a bad file', async () => {
    const sock = await NotifySocket.start();
    const d = await TestBerthd.start({ env: { NOTIFY_SOCKET: sock.address } });
    try {
      await sock.waitFor('READY=1');
      const dropIns = path.join(d.dir, 'config.d');
      fs.mkdirSync(dropIns);
      const cniDir = path.join(d.dir, 'cni-reloaded');
      fs.writeFileSync(
        path.join(dropIns, '50-reload.toml'),
        [
          'shutdown_timeout_seconds = 3',
          '[log]\nlevel = "warn"',
          `[image]\npinned_images = ["registry.example/pinned:1"]\nregistry_config_dir = ${JSON.stringify(path.join(d.dir, 'certs.d'))}`,
          '[image.credentials."reg.example"]\nusername = "u"\npassword = "sekret"',
          `[cni]\nconf_dir = ${JSON.stringify(cniDir)}`,
          '[streaming]\nport = 1',
        ].join('\n'),
      );
      const before = d.output.length;
      d.proc?.kill('SIGHUP');
      const reloaded = await waitForOutput(d, before, /config reloaded/);
      assert.match(reloaded, /needRestart.*shutdown_timeout_seconds.*streaming\.port/);
      assert.match(reloaded, /applied.*cni\.conf_dir.*image\.credentials\.reg\.example\.password.*image\.pinned_images.*image\.registry_config_dir.*log\.level/);
      assert.doesNotMatch(d.output, /sekret/, 'credential values never reach the log');
      await sock.waitFor('RELOADING=1');
      const readies = () => sock.messages.filter((m) => m.msg.split('\n').includes('READY=1')).length;
      // The receiver reports datagrams in its own time: wait for the second READY=1 rather than race it.
      for (let i = 0; i < 200 && readies() < 2; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(readies(), 2, 'READY=1 again after the reload');

      const status = await d.cri.runtime.Status({ verbose: true });
      const live = JSON.parse(status.info.config) as ReturnType<typeof defaultConfig>;
      assert.deepEqual(live.image.pinned_images, ['registry.example/pinned:1']);
      assert.equal(live.image.credentials['reg.example'].password, '<redacted>');
      assert.equal(live.cni.conf_dir, cniDir);
      assert.equal(live.log.level, 'warn');
      assert.equal(live.streaming.port, 0, 'a key that needs a restart is not applied');
      assert.equal(live.shutdown_timeout_seconds, 10);
      const network = status.status?.conditions.find((c) => c.type === 'NetworkReady');
      assert.match(network?.message ?? '', new RegExp(`no CNI network config found in ${cniDir}`));

      // log.level=warn: the per-RPC debug lines stop.
      const quiet = d.output.length;
      await d.cri.runtime.Version({ version: '' });
      await new Promise((r) => setTimeout(r, 200));
      assert.doesNotMatch(d.output.slice(quiet), /DEBUG/);

      // A broken drop-in changes nothing and berthd keeps serving.
      fs.writeFileSync(path.join(dropIns, '60-broken.toml'), '[log]\nlevel = "loud"\n');
      const mark = d.output.length;
      d.proc?.kill('SIGHUP');
      const failed = await waitForOutput(d, mark, /config reload failed/);
      assert.match(failed, /60-broken\.toml.*log\.level/);
      assert.equal((await d.cri.runtime.Version({ version: '' })).runtimeName, 'berth');
    } finally {
      await d.cleanup();
      await sock.stop();
    }
  });
});

async function waitForOutput(d: TestBerthd, from: number, re: RegExp): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const line = d.output.slice(from).split('\n').find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no ${re} in berthd's output:\n${d.output.slice(from)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
