// The container state machine: every state a container record can be in, the
// moves between them, and the functions that make them. Nothing else assigns
// a container's state or phase; the record store refuses an undeclared move.
//
//   creating ──> created ──> running ──> exited ──> removing ──> (deleted)
//      │            │  └──────────────────^ ^           ^
//      │            └── (start failed, killed before start, shim lost)
//      └───────────────────────────────────────────────┘ (rollback)
//
// `creating` and `removing` are the phases crash recovery acts on: a record
// left in either by a killed berthd is rolled back or finished at start.
import { defineStateMachine } from '../store/state_machine';
import type { ContainerPhase, ContainerRecord, ContainerStateName } from './record';
import { nowNs } from '../util/time';

export type ContainerLifecycleState = 'creating' | 'created' | 'running' | 'exited' | 'removing';

export const CONTAINER_STATES = defineStateMachine<ContainerLifecycleState>('container', {
  creating: ['created', 'removing'],
  created: ['running', 'exited', 'removing'],
  running: ['exited'],
  exited: ['removing'],
  removing: [],
});

const CRI_STATE: Record<'created' | 'running' | 'exited', ContainerStateName> = {
  created: 'CONTAINER_CREATED',
  running: 'CONTAINER_RUNNING',
  exited: 'CONTAINER_EXITED',
};

export function lifecycleStateOf(rec: Pick<ContainerRecord, 'phase' | 'state'>): ContainerLifecycleState {
  if (rec.phase !== 'ready') return rec.phase;
  switch (rec.state) {
    case 'CONTAINER_RUNNING':
      return 'running';
    case 'CONTAINER_EXITED':
      return 'exited';
    default:
      return 'created';
  }
}

/** The phase and CRI state of a record just being created. */
export function initialContainerState(): { phase: ContainerPhase; state: ContainerStateName } {
  return { phase: 'creating', state: CRI_STATE.created };
}

/** CreateContainer finished: the container exists and waits for StartContainer. */
export function markCreated(rec: ContainerRecord): void {
  rec.phase = 'ready';
  rec.state = CRI_STATE.created;
}

/** The runtime started the process (its start time taken before `runtime start`). */
export function markStarted(startedAtNs: string) {
  return (rec: ContainerRecord): void => {
    rec.state = CRI_STATE.running;
    rec.startedAt = startedAtNs;
  };
}

export interface ExitFacts {
  exitCode: number;
  exitedAtNs: string;
  oomKilled?: boolean;
}

/** The process exited as the shim recorded it. */
export function markExited(exit: ExitFacts) {
  return (rec: ContainerRecord): void => {
    rec.state = CRI_STATE.exited;
    rec.finishedAt = exit.exitedAtNs;
    rec.exitCode = exit.exitCode;
    rec.reason = exit.oomKilled ? 'OOMKilled' : exit.exitCode === 0 ? 'Completed' : 'Error';
    if (rec.startedAt === '0') rec.startedAt = exit.exitedAtNs;
  };
}

/** `runtime start` failed: the container is dead, and says why (as containerd does). */
export function markStartFailed(message: string) {
  return (rec: ContainerRecord): void => {
    rec.state = CRI_STATE.exited;
    rec.finishedAt = nowNs();
    rec.exitCode = 128;
    rec.reason = 'StartError';
    rec.message = message;
  };
}

/** The shim vanished without recording an exit: the container is gone with it. */
export function markLost(rec: ContainerRecord): void {
  rec.state = CRI_STATE.exited;
  rec.finishedAt = nowNs();
  rec.exitCode = 255;
  rec.reason = 'Unknown';
  rec.message = "the container's shim exited without recording an exit status";
}

/** RemoveContainer began; a restart finishes it. */
export function markRemoving(rec: ContainerRecord): void {
  rec.phase = 'removing';
}

export function isRunning(rec: ContainerRecord): boolean {
  return lifecycleStateOf(rec) === 'running';
}

export function isExited(rec: ContainerRecord): boolean {
  return rec.state === CRI_STATE.exited;
}

/** "created", "running", "exited": for messages. */
export function stateWord(rec: ContainerRecord): string {
  return rec.state.replace('CONTAINER_', '').toLowerCase();
}
