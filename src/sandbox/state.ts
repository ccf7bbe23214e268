// The pod sandbox state machine: its states, the moves between them, and the
// functions that make them. Nothing else assigns a pod's state; the record
// store refuses an undeclared move.
//
//   creating ──> ready ──> notready ──> (deleted)
//      └─────────────────────────────────^ (rollback)
//
// `creating` is the phase crash recovery acts on: a record left in it by a
// killed berthd is rolled back at start. `notready` is a stopped pod, or one
// whose namespaces vanished (reboot, berth-pause died).
import { defineStateMachine } from '../store/state_machine';
import type { SandboxLifecycle, SandboxRecord } from './record';

export const SANDBOX_STATES = defineStateMachine<SandboxLifecycle>('pod sandbox', {
  creating: ['ready'],
  ready: ['notready'],
  notready: [],
});

export function initialSandboxState(): SandboxLifecycle {
  return 'creating';
}

/** RunPodSandbox finished: namespaces pinned, files written, network attached. */
export function markReady(rec: SandboxRecord): void {
  rec.state = 'ready';
}

/** How a removed pod is shown in its last events: stopped, whatever phase its record ended in. */
export function removedView(rec: SandboxRecord): SandboxRecord {
  return { ...rec, state: 'notready' };
}

/** Stopped (StopPodSandbox) or found broken at start. */
export function markNotReady(rec: SandboxRecord): void {
  rec.state = 'notready';
}
