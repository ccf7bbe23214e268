// The record store: durable atomic records, reload with crash debris, names,
// prefix lookup, creation order, label matching and checked state changes.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { labelsMatch, RecordStore } from '../../src/store/record_store';
import { defineStateMachine } from '../../src/store/state_machine';

type Light = 'red' | 'green' | 'off';
interface Rec {
  id: string;
  name: string;
  light: Light;
  createdAt: string;
}

const MACHINE = defineStateMachine<Light>('lamp', { red: ['green', 'off'], green: ['red'], off: [] });

const hex = (c: string): string => c.repeat(64);

describe('record store', () => {
  let dir: string;
  const open = (): RecordStore<Rec, Light> =>
    new RecordStore<Rec, Light>({
      dir,
      what: 'lamp',
      logger: silentLogger(),
      nameOf: (r) => (r.light === 'off' ? undefined : r.name),
      states: { machine: MACHINE, of: (r) => r.light },
      createdAtOf: (r) => r.createdAt,
    });
  const rec = (c: string, name: string, createdAt: string, light: Light = 'red'): Rec => ({ id: hex(c), name, light, createdAt });
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-records-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates, updates, reloads in creation order and deletes records, leaving no temp file', async () => {
    const store = open();
    store.load();
    await store.create(rec('b', 'two', '20'));
    await store.create(rec('a', 'one', '10'));
    const held = store.get(hex('a'));
    await store.update(hex('a'), (r) => (r.light = 'green'));
    assert.equal(held?.light, 'green', 'holders of the record see the update');
    assert.deepEqual(fs.readdirSync(dir).sort(), [`${hex('a')}.json`, `${hex('b')}.json`]);
    const reloaded = open();
    assert.deepEqual(reloaded.load().map((r) => r.name), ['one', 'two'], 'sorted by creation time after a reload');
    assert.equal(reloaded.get(hex('a'))?.light, 'green');
    await reloaded.delete(hex('a'));
    await reloaded.delete(hex('a'));
    assert.deepEqual(fs.readdirSync(dir), [`${hex('b')}.json`]);
  });

  it('drops temp files of interrupted writes and skips damaged records', async () => {
    const store = open();
    store.load();
    await store.create(rec('b', 'good', '1'));
    fs.writeFileSync(path.join(dir, `${hex('c')}.json`), '{"id": "cc');
    fs.writeFileSync(path.join(dir, `${hex('d')}.json`), JSON.stringify(rec('b', 'impostor', '2')));
    fs.writeFileSync(path.join(dir, `${hex('b')}.json.tmp-0a1b`), '{');
    assert.deepEqual(open().load().map((r) => r.name), ['good']);
    assert.equal(fs.existsSync(path.join(dir, `${hex('b')}.json.tmp-0a1b`)), false);
  });

  it('finds by full id or unique prefix and refuses an ambiguous prefix', async () => {
    const store = open();
    store.load();
    await store.create({ ...rec('a', 'one', '1'), id: 'ab' + hex('0').slice(2) });
    await store.create({ ...rec('a', 'two', '2'), id: 'ac' + hex('0').slice(2) });
    assert.equal(store.find('ab')?.name, 'one');
    assert.equal(store.find('ac' + hex('0').slice(2))?.name, 'two');
    assert.equal(store.find('ff'), undefined);
    assert.equal(store.find(''), undefined);
    assert.throws(() => store.find('a'), (e: unknown) => e instanceof BerthError && e.kind === 'INVALID_ARGUMENT');
    assert.equal(store.find('ab', (r) => r.name !== 'one'), undefined, 'hidden records are not found');
  });

  it('reserves a name for one id until released or deleted, also across a reload', async () => {
    const store = open();
    store.load();
    assert.equal(store.reserveName('one', hex('a')), undefined);
    assert.equal(store.reserveName('one', hex('b')), hex('a'), 'a second id is refused');
    assert.equal(store.reserveName('one', hex('a')), undefined, 'the holder may reserve again');
    await store.create(rec('a', 'one', '1'));
    const reloaded = open();
    reloaded.load();
    assert.equal(reloaded.nameHolder('one'), hex('a'));
    reloaded.releaseName('one', hex('b'));
    assert.equal(reloaded.nameHolder('one'), hex('a'), 'only the holder releases a name');
    await reloaded.delete(hex('a'));
    assert.equal(reloaded.nameHolder('one'), undefined, 'deleting the record frees its name');
  });

  it('refuses an undeclared state change and applies nothing of it', async () => {
    const store = open();
    store.load();
    await store.create(rec('a', 'one', '1'));
    await store.update(hex('a'), (r) => (r.light = 'off'));
    await assert.rejects(
      store.update(hex('a'), (r) => {
        r.light = 'green';
        r.name = 'changed';
      }),
      (e: unknown) => e instanceof BerthError && e.kind === 'INTERNAL' && /off -> green/.test(e.message),
    );
    assert.equal(store.get(hex('a'))?.name, 'one');
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, `${hex('a')}.json`), 'utf8')).light, 'off');
  });

  it("changes a record's revision with each update, and not with a refused one", async () => {
    const store = open();
    store.load();
    await store.create(rec('a', 'one', '1'));
    const a = store.get(hex('a'));
    assert.ok(a);
    const r0 = store.revision(a);
    await store.update(hex('a'), (r) => (r.name = 'renamed'));
    const r1 = store.revision(a);
    assert.notEqual(r1, r0);
    await store.update(hex('a'), (r) => (r.light = 'off'));
    assert.notEqual(store.revision(a), r1);
    const r2 = store.revision(a);
    await assert.rejects(store.update(hex('a'), (r) => (r.light = 'green')));
    assert.equal(store.revision(a), r2, 'nothing was applied');
  });

  it('changes its generation with every create, update, delete and load, and not with a refused update', async () => {
    const store = open();
    store.load();
    const seen = new Set([store.generation]);
    const changed = (what: string): void => {
      assert.ok(!seen.has(store.generation), `${what} changed the generation`);
      seen.add(store.generation);
    };
    await store.create(rec('a', 'one', '1'));
    changed('create');
    await store.update(hex('a'), (r) => (r.light = 'off'));
    changed('update');
    const before = store.generation;
    await assert.rejects(store.update(hex('a'), (r) => (r.light = 'green')));
    assert.equal(store.generation, before, 'a refused update changes nothing');
    await store.delete(hex('a'));
    changed('delete');
    store.load();
    changed('load');
  });

  it('matches label selectors', () => {
    assert.equal(labelsMatch({ a: '1', b: '2' }, { a: '1' }), true);
    assert.equal(labelsMatch({ a: '1' }, { a: '2' }), false);
    assert.equal(labelsMatch({}, {}), true);
    assert.equal(labelsMatch(undefined, { a: '1' }), false);
  });
});
