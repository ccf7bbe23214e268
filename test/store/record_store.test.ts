// The record store: durable atomic records, reload with crash debris, names,
// prefix lookup, creation order, label matching and checked state changes.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { labelsMatch, RecordStore } from '../../src/store/record_store';
import { defineStateMachine } from '../../src/store/state_machine';
import { killMidWay } from '../helpers/kill_mid_way';

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
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.spares`, { recursive: true, force: true });
  });

  const spareDir = (): string => `${dir}.spares`;
  const records = (): string[] => fs.readdirSync(dir).sort();
  const spareCount = (): number => fs.readdirSync(spareDir()).length;
  const inodes = (): Set<number> =>
    new Set([dir, spareDir()].flatMap((d) => fs.readdirSync(d).map((n) => fs.statSync(path.join(d, n)).ino)));

  it('creates, updates, reloads in creation order and deletes records, leaving no file but records and spares', async () => {
    const store = open();
    store.load();
    await store.create(rec('b', 'two', '20'));
    await store.create(rec('a', 'one', '10'));
    const held = store.get(hex('a'));
    await store.update(hex('a'), (r) => (r.light = 'green'));
    assert.equal(held?.light, 'green', 'holders of the record see the update');
    assert.deepEqual(records(), [`${hex('a')}.json`, `${hex('b')}.json`]);
    assert.equal(spareCount(), 1, 'the replaced record is kept as a spare');
    const reloaded = open();
    assert.deepEqual(reloaded.load().map((r) => r.name), ['one', 'two'], 'sorted by creation time after a reload');
    assert.equal(reloaded.get(hex('a'))?.light, 'green');
    await reloaded.delete(hex('a'));
    await reloaded.delete(hex('a'));
    assert.deepEqual(records(), [`${hex('b')}.json`]);
    assert.equal(spareCount(), 2, 'the spare found at load and the deleted record');
  });

  it('makes and frees no inode once warm: updates swap the old record into a spare, deletes keep the inode, creates take it', async () => {
    const store = open();
    store.load();
    await store.create(rec('a', 'one', '1'));
    await store.update(hex('a'), (r) => (r.light = 'green'));
    const warm = inodes();
    assert.equal(warm.size, 2, 'the record and one spare');
    for (let i = 0; i < 10; i++) await store.update(hex('a'), (r) => (r.light = r.light === 'green' ? 'red' : 'green'));
    await store.delete(hex('a'));
    await store.create(rec('b', 'two', '2'));
    await store.update(hex('b'), (r) => (r.light = 'green'));
    assert.deepEqual([...inodes()].sort(), [...warm].sort(), 'the same two inodes, nothing made or freed');
    const reloaded = open();
    assert.deepEqual(reloaded.load().map((r) => [r.name, r.light]), [['two', 'green']], 'no spare is taken for a record');
    assert.equal(records().length, 1);
  });

  it('keeps at most 64 spares and writes whole records through reused ones', async () => {
    const store = open();
    store.load();
    const ids = Array.from({ length: 80 }, (_, i) => i.toString(16).padStart(64, '0'));
    await Promise.all(ids.map((id, i) => store.create({ id, name: `n${i}`, light: 'red', createdAt: String(i) })));
    await Promise.all(ids.map((id) => store.update(id, (r) => (r.light = 'green'))));
    await Promise.all(ids.map((id) => store.update(id, (r) => (r.light = 'red'))));
    assert.ok(spareCount() <= 64, `${spareCount()} spares`);
    assert.ok(open().load().every((r) => r.light === 'red'), 'every record is its last write, whole');
    await Promise.all(ids.map((id) => store.delete(id)));
    assert.deepEqual(records(), []);
    assert.equal(spareCount(), 64);
  });

  it('cuts a reused spare to the new record: a shorter record written over a longer one leaves no tail', async () => {
    const store = open();
    store.load();
    const sized = (n: number) => (r: Rec) => void (r.name = 'x'.repeat(n));
    await store.create(rec('a', 'one', '1'));
    // Sizes going down and up, so each write lands in a spare that held a longer or shorter record.
    for (const n of [20000, 10, 15000, 5, 3, 30000, 1]) {
      await store.update(hex('a'), sized(n));
      const onDisk = JSON.parse(fs.readFileSync(path.join(dir, `${hex('a')}.json`), 'utf8')) as Rec;
      assert.equal(onDisk.name.length, n);
    }
    assert.equal(inodes().size, 2, 'every write went through the one spare');
  });

  it('uses no spares where the spare directory is on another file system (a rename cannot cross)', async () => {
    fs.mkdirSync(spareDir());
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'berth-test-spares', spareDir()]);
    try {
      const store = open();
      store.load();
      await store.create(rec('a', 'one', '1'));
      await store.update(hex('a'), (r) => (r.light = 'green'));
      await store.delete(hex('a'));
      await store.create(rec('b', 'two', '2'));
      assert.deepEqual(records(), [`${hex('b')}.json`]);
      assert.equal(spareCount(), 0);
      assert.deepEqual(open().load().map((r) => r.name), ['two']);
    } finally {
      execFileSync('umount', [spareDir()]);
    }
  });

  it('leaves every record whole, old or new, when berthd is SIGKILLed in the middle of writes through spares', async () => {
    // A child keeps rewriting 20 records (16 KiB each, so a torn one would show), 20 at a time, creating and deleting as it goes.
    const storeModule = path.resolve(__dirname, '..', '..', 'src', 'store', 'record_store.js');
    const loggerModule = path.resolve(__dirname, '..', '..', 'src', 'log', 'logger.js');
    const script = `
      const { RecordStore } = require(${JSON.stringify(storeModule)});
      const { silentLogger } = require(${JSON.stringify(loggerModule)});
      const store = new RecordStore({ dir: ${JSON.stringify(dir)}, what: 'lamp', logger: silentLogger() });
      store.load();
      const id = (i) => i.toString(16).padStart(64, '0');
      const pad = 'x'.repeat(16384);
      (async () => {
        await Promise.all(Array.from({ length: 20 }, (_, i) => store.create({ id: id(i), gen: 0, pad })));
        for (let gen = 1; ; gen++) {
          await store.delete(id(20 + (gen % 5)));
          await Promise.all([store.create({ id: id(20 + (gen % 5)), gen, pad }), ...Array.from({ length: 20 }, (_, i) => store.update(id(i), (r) => { r.gen = gen; }))]);
          if (gen === 3) process.stdout.write('writing\\n');
        }
      })();`;
    await killMidWay(script);
    // A torn record would be skipped at load (with a warning): the 20 never deleted must all be there, whole.
    const loaded = new RecordStore<{ id: string; gen: number; pad: string }>({ dir, what: 'lamp', logger: silentLogger() }).load();
    assert.equal(loaded.filter((r) => BigInt(`0x${r.id}`) < 20n).length, 20);
    assert.ok(loaded.every((r) => r.pad.length === 16384 && r.gen >= 0));
    assert.ok(loaded.filter((r) => BigInt(`0x${r.id}`) < 20n).every((r) => r.gen >= 3), 'past the generation that said it was writing');
  });

  it('drops temp files of interrupted writes and skips damaged records', async () => {
    const store = open();
    store.load();
    await store.create(rec('b', 'good', '1'));
    fs.writeFileSync(path.join(dir, `${hex('c')}.json`), '{"id": "cc');
    fs.writeFileSync(path.join(dir, `${hex('d')}.json`), JSON.stringify(rec('b', 'impostor', '2')));
    fs.writeFileSync(path.join(dir, `${hex('b')}.json.tmp-0a1b`), '{');
    fs.writeFileSync(path.join(spareDir(), 'cut-short'), '{"id": "half');
    fs.mkdirSync(path.join(spareDir(), 'not-a-file'));
    const reopened = open();
    assert.deepEqual(reopened.load().map((r) => r.name), ['good']);
    assert.equal(fs.existsSync(path.join(dir, `${hex('b')}.json.tmp-0a1b`)), false);
    assert.equal(fs.existsSync(path.join(spareDir(), 'not-a-file')), false, 'a spare that is no file is removed');
    // A file left in the spare directory is kept as a spare: the next write goes through it, whole.
    await reopened.update(hex('b'), (r) => (r.light = 'green'));
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, `${hex('b')}.json`), 'utf8')), { ...rec('b', 'good', '1'), light: 'green' });
    assert.deepEqual(
      JSON.parse(fs.readFileSync(path.join(spareDir(), 'cut-short'), 'utf8')),
      rec('b', 'good', '1'),
      'the old record was swapped into the spare',
    );
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
