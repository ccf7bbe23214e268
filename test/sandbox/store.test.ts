// The durable sandbox store: atomic replace, reload, and what it does with
// debris from a crash (temp files) or a damaged record.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log/logger';
import type { SandboxRecord } from '../../src/sandbox/record';
import { SandboxStore } from '../../src/sandbox/store';

function record(id: string, name: string): SandboxRecord {
  return {
    id,
    metadata: { name, uid: 'u', namespace: 'n', attempt: 0 },
    state: 'ready',
    createdAt: '1700000000000000000',
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
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('saves, replaces, reloads and deletes records', async () => {
    const a = 'a'.repeat(64);
    const store = new SandboxStore(dir, silentLogger());
    store.load();
    await store.save(record(a, 'one'));
    await store.save({ ...record(a, 'one'), state: 'notready' });
    assert.deepEqual(fs.readdirSync(dir), [`${a}.json`], 'no temp file may remain');
    const reloaded = new SandboxStore(dir, silentLogger()).load();
    assert.equal(reloaded.length, 1);
    assert.equal(reloaded[0].state, 'notready');
    await store.delete(a);
    await store.delete(a);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('drops temp files of interrupted writes and skips damaged records', async () => {
    const good = 'b'.repeat(64);
    const bad = 'c'.repeat(64);
    const wrongId = 'd'.repeat(64);
    const store = new SandboxStore(dir, silentLogger());
    store.load();
    await store.save(record(good, 'good'));
    fs.writeFileSync(path.join(dir, `${bad}.json`), '{"id": "cc');
    fs.writeFileSync(path.join(dir, `${wrongId}.json`), JSON.stringify(record(good, 'impostor')));
    fs.writeFileSync(path.join(dir, `${good}.json.tmp`), '{');
    const loaded = new SandboxStore(dir, silentLogger()).load();
    assert.deepEqual(loaded.map((r) => r.metadata.name), ['good']);
    assert.equal(fs.existsSync(path.join(dir, `${good}.json.tmp`)), false);
  });
});
