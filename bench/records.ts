// Record writes: the five durable writes of a pod start (pod record, READY;
// container record, CREATED, RUNNING) and the two deletes of its removal, made
// through the record store as berthd makes them. Floor: the syscalls of a
// plain atomic write (open temp, write, fsync, close, rename, open dir, fsync,
// close) made synchronously in a row, on the same file system, in the same
// run; for a delete, unlink and the directory fsync.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { silentLogger } from '../src/log/logger';
import { RecordStore } from '../src/store/record_store';
import { latencyRow, out, tempDir, timed, withCleanups } from './common';

const SEQUENTIAL_PODS = 100;
const ROUNDS = 10;
const AT_ONCE = 10;

interface Rec {
  id: string;
  state: string;
  pad: string;
}

/** About the size of a container record (its config is most of it). */
const PAD = 'x'.repeat(3000);

function floorWrite(file: string, data: string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  floorSyncDir(path.dirname(file));
}

function floorSyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

function floorDelete(file: string): void {
  fs.unlinkSync(file);
  floorSyncDir(path.dirname(file));
}

export async function benchRecords(): Promise<void> {
  await withCleanups(async (c) => {
    const root = tempDir(c, 'berth-bench-records-');
    const store = (name: string): RecordStore<Rec> => {
      const s = new RecordStore<Rec>({ dir: path.join(root, name), what: name, logger: silentLogger() });
      s.load();
      return s;
    };
    const pods = store('pods');
    const containers = store('containers');
    const floorDir = path.join(root, 'floor');
    fs.mkdirSync(floorDir);
    let n = 0;
    const nextId = (): string => (n++).toString(16).padStart(64, '0');

    /** One pod's writes through the store; each write's latency goes to `writes`, each delete's to `deletes`. */
    const podCycle = async (writes: number[], deletes: number[], remove: boolean): Promise<void> => {
      const p = nextId();
      const k = nextId();
      writes.push(await timed(() => pods.create({ id: p, state: 'creating', pad: PAD })));
      writes.push(await timed(() => pods.update(p, (r) => void (r.state = 'ready'))));
      writes.push(await timed(() => containers.create({ id: k, state: 'creating', pad: PAD })));
      writes.push(await timed(() => containers.update(k, (r) => void (r.state = 'created'))));
      writes.push(await timed(() => containers.update(k, (r) => void (r.state = 'running'))));
      if (!remove) return;
      deletes.push(await timed(() => containers.delete(k)));
      deletes.push(await timed(() => pods.delete(p)));
    };
    /** The same writes and deletes as podCycle, as the floor makes them. */
    const floorCycle = async (writes: number[], deletes: number[]): Promise<void> => {
      const files = [path.join(floorDir, `${nextId()}.json`), path.join(floorDir, `${nextId()}.json`)];
      const data = JSON.stringify({ id: files[0], state: 'creating', pad: PAD }, null, 1);
      for (const file of [files[0], files[0], files[1], files[1], files[1]]) writes.push(await timed(async () => floorWrite(file, data)));
      for (const file of files) deletes.push(await timed(async () => floorDelete(file)));
    };

    // One pod at a time, berth and floor alternating so both see the same load.
    const writes: number[] = [];
    const deletes: number[] = [];
    const floorWrites: number[] = [];
    const floorDeletes: number[] = [];
    await podCycle([], [], true);
    for (let i = 0; i < SEQUENTIAL_PODS; i++) {
      await podCycle(writes, deletes, true);
      await floorCycle(floorWrites, floorDeletes);
    }
    out(`one pod at a time (${SEQUENTIAL_PODS} pods, ${PAD.length} B records):`);
    out(latencyRow('floor  sync atomic write (temp, fsync, rename, fsync dir)', floorWrites));
    out(latencyRow('berth  record write (create/update)', writes, floorWrites));
    out(latencyRow('floor  sync unlink + fsync dir', floorDeletes));
    out(latencyRow('berth  record delete', deletes, floorDeletes));

    // Ten pods at once: wall and CPU of a round (ten pods' five writes and two deletes).
    const wall: number[] = [];
    const floorWall: number[] = [];
    let cpuUs = 0;
    let floorCpuUs = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const cpu0 = process.cpuUsage();
      wall.push(await timed(() => Promise.all(Array.from({ length: AT_ONCE }, () => podCycle([], [], true)))));
      const cpu1 = process.cpuUsage(cpu0);
      cpuUs += cpu1.user + cpu1.system;
      const f0 = process.cpuUsage();
      floorWall.push(await timed(async () => {
        for (let i = 0; i < AT_ONCE; i++) await floorCycle([], []);
      }));
      const f1 = process.cpuUsage(f0);
      floorCpuUs += f1.user + f1.system;
    }
    out(`${AT_ONCE} pods at once (${ROUNDS} rounds; floor: the same ${AT_ONCE * 5} writes and ${AT_ONCE * 2} deletes in a row):`);
    out(latencyRow(`floor  ${AT_ONCE * 5} sync writes + ${AT_ONCE * 2} deletes`, floorWall));
    out(latencyRow(`berth  ${AT_ONCE} pods' writes + deletes at once`, wall, floorWall));
    out(`  CPU per round (this process, all threads): floor ${(floorCpuUs / ROUNDS / 1000).toFixed(1)} ms, berth ${(cpuUs / ROUNDS / 1000).toFixed(1)} ms`);
  });
}
