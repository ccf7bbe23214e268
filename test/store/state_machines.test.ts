// The declared state machines of containers and pods: every allowed move is
// made through the record store, and an illegal one is refused.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import { silentLogger } from '../../src/log/logger';
import { RecordStore } from '../../src/store/record_store';
import { canTransition, type StateMachine } from '../../src/store/state_machine';
import {
  CONTAINER_STATES,
  lifecycleStateOf,
  markCreated,
  markExited,
  markLost,
  markRemoving,
  markStarted,
  markStartFailed,
  type ContainerLifecycleState,
} from '../../src/container/state';
import type { ContainerRecord } from '../../src/container/record';
import { markNotReady, markReady, SANDBOX_STATES } from '../../src/sandbox/state';
import type { SandboxLifecycle, SandboxRecord } from '../../src/sandbox/record';

function edges<S extends string>(m: StateMachine<S>): Array<[S, S]> {
  return (Object.keys(m.transitions) as S[]).flatMap((from) => m.transitions[from].map((to): [S, S] => [from, to]));
}

describe('state machines', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-states-'))));
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.spares`, { recursive: true, force: true }); // the record store's spare files (src/store/spare_files.ts)
  });

  const CONTAINER_MOVES: Record<ContainerLifecycleState, (r: ContainerRecord) => void> = {
    creating: () => assert.fail('nothing moves back to creating'),
    created: markCreated,
    running: markStarted('5'),
    exited: markExited({ exitCode: 0, exitedAtNs: '9' }),
    removing: markRemoving,
  };
  const containerIn = (s: ContainerLifecycleState): ContainerRecord => {
    const phase = s === 'creating' || s === 'removing' ? s : 'ready';
    const state = s === 'running' ? 'CONTAINER_RUNNING' : s === 'exited' ? 'CONTAINER_EXITED' : 'CONTAINER_CREATED';
    return { id: 'a'.repeat(64), phase, state, startedAt: '0' } as ContainerRecord;
  };
  const containerStore = () =>
    new RecordStore<ContainerRecord, ContainerLifecycleState>({
      dir,
      what: 'container',
      logger: silentLogger(),
      states: { machine: CONTAINER_STATES, of: lifecycleStateOf },
    });

  for (const [from, to] of edges(CONTAINER_STATES)) {
    it(`container: ${from} -> ${to} through its state function`, async () => {
      const store = containerStore();
      store.load();
      await store.create(containerIn(from));
      const rec = await store.update('a'.repeat(64), CONTAINER_MOVES[to]);
      assert.equal(lifecycleStateOf(rec), to);
    });
  }

  it('container: start failure, lost shim and exit record why the container ended', async () => {
    const a = containerIn('created');
    markStartFailed('no such file')(a);
    assert.deepEqual([a.state, a.exitCode, a.reason, a.message], ['CONTAINER_EXITED', 128, 'StartError', 'no such file']);
    const b = containerIn('running');
    markLost(b);
    assert.deepEqual([b.state, b.exitCode, b.reason], ['CONTAINER_EXITED', 255, 'Unknown']);
    const c = containerIn('running');
    markExited({ exitCode: 137, exitedAtNs: '7', oomKilled: true })(c);
    assert.deepEqual([c.reason, c.finishedAt, c.startedAt], ['OOMKilled', '7', '7']);
  });

  it('container: an exited container cannot run again, nor a removing one come back', async () => {
    assert.equal(canTransition(CONTAINER_STATES, 'exited', 'running'), false);
    assert.equal(canTransition(CONTAINER_STATES, 'removing', 'created'), false);
    assert.equal(canTransition(CONTAINER_STATES, 'running', 'created'), false);
    const store = containerStore();
    store.load();
    await store.create(containerIn('exited'));
    await assert.rejects(
      store.update('a'.repeat(64), markStarted('1')),
      (e: unknown) => e instanceof BerthError && e.kind === 'INTERNAL' && /exited -> running/.test(e.message),
    );
    assert.equal(store.get('a'.repeat(64))?.state, 'CONTAINER_EXITED');
  });

  const POD_MOVES: Record<SandboxLifecycle, (r: SandboxRecord) => void> = {
    creating: () => assert.fail('nothing moves back to creating'),
    ready: markReady,
    notready: markNotReady,
  };
  const podStore = () =>
    new RecordStore<SandboxRecord, SandboxLifecycle>({
      dir,
      what: 'pod sandbox',
      logger: silentLogger(),
      states: { machine: SANDBOX_STATES, of: (r) => r.state },
    });

  for (const [from, to] of edges(SANDBOX_STATES)) {
    it(`pod: ${from} -> ${to} through its state function`, async () => {
      const store = podStore();
      store.load();
      await store.create({ id: 'b'.repeat(64), state: from } as SandboxRecord);
      assert.equal((await store.update('b'.repeat(64), POD_MOVES[to])).state, to);
    });
  }

  it('pod: a stopped pod never becomes ready again', async () => {
    const store = podStore();
    store.load();
    await store.create({ id: 'b'.repeat(64), state: 'notready' } as SandboxRecord);
    await assert.rejects(store.update('b'.repeat(64), markReady), /notready -> ready/);
    await assert.rejects(store.update('b'.repeat(64), (r) => (r.state = 'creating')), /notready -> creating/);
  });
});
