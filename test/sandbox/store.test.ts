// The sandbox store: the record store configured for pods — the pod state
// machine, names held by created pods only (never by a half-created one),
// and creation order across a reload.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log/logger';
import { sandboxNameKey, type SandboxLifecycle, type SandboxRecord } from '../../src/sandbox/record';
import { markNotReady, markReady } from '../../src/sandbox/state';
import { SandboxStore } from '../../src/sandbox/store';

function record(id: string, name: string, state: SandboxLifecycle, createdAt: string): SandboxRecord {
  return {
    id,
    metadata: { name, uid: 'u', namespace: 'n', attempt: 0 },
    state,
    createdAt,
    runtimeHandler: 'runc',
    config: {} as SandboxRecord['config'],
    namespaceModes: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
    nsPaths: {},
    stateDir: '/nonexistent',
    filesDir: '/nonexistent',
    hostnameFile: '',
    hostsFile: '',
    resolvConfFile: '',
    hostname: name,
    cgroup: { path: '/berth/podu', createdByBerth: true },
    network: { ip: '', additionalIps: [] },
    networkAttached: false,
  };
}

describe('sandbox store', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-store-'))));
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.spares`, { recursive: true, force: true }); // the record store's spare files (src/store/spare_files.ts)
  });
  const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(64));
  const key = (name: string): string => sandboxNameKey(record('', name, 'ready', '0').metadata);

  it('moves pods along the pod state machine only, durably', async () => {
    const store = new SandboxStore(dir, silentLogger());
    store.load();
    await store.create(record(a, 'one', 'creating', '1'));
    await assert.rejects(store.update(a, markNotReady), /pod sandbox .*creating -> notready/);
    await store.update(a, markReady);
    await store.update(a, markNotReady);
    await assert.rejects(store.update(a, markReady), /notready -> ready/);
    assert.equal(new SandboxStore(dir, silentLogger()).load()[0].state, 'notready');
  });

  it('reloads in creation order; created pods keep their names, half-created ones hold none', async () => {
    const store = new SandboxStore(dir, silentLogger());
    store.load();
    // Written out of creation order: the file order must not matter.
    await store.create(record(c, 'late', 'notready', '30'));
    await store.create(record(b, 'half', 'creating', '20'));
    await store.create(record(a, 'early', 'ready', '10'));
    const reloaded = new SandboxStore(dir, silentLogger());
    assert.deepEqual(reloaded.load().map((r) => r.id), [a, b, c]);
    assert.equal(reloaded.nameHolder(key('early')), a);
    assert.equal(reloaded.nameHolder(key('late')), c);
    assert.equal(reloaded.nameHolder(key('half')), undefined);
    assert.equal(reloaded.reserveName(key('half'), 'd'.repeat(64)), undefined);
    await reloaded.delete(a);
    assert.equal(reloaded.nameHolder(key('early')), undefined);
    assert.deepEqual(fs.readdirSync(dir).sort(), [`${b}.json`, `${c}.json`]);
  });
});
