// A declared state machine: the states a record can be in and the moves
// between them. The record store checks every update against it, so a state
// can only change along a declared edge, whoever asks.
import { internal } from '../errors';

export interface StateMachine<S extends string> {
  /** What the records are, for messages ("container", "pod sandbox"). */
  readonly what: string;
  /** For each state, the states it may move to (staying in a state is always allowed). */
  readonly transitions: Readonly<Record<S, readonly S[]>>;
}

export function defineStateMachine<S extends string>(what: string, transitions: Record<S, readonly S[]>): StateMachine<S> {
  return Object.freeze({ what, transitions: Object.freeze({ ...transitions }) });
}

export function canTransition<S extends string>(machine: StateMachine<S>, from: S, to: S): boolean {
  return from === to || (machine.transitions[from]?.includes(to) ?? false);
}

/** Throws INTERNAL for a move the machine does not declare: it is a bug in berth, not a client error. */
export function assertTransition<S extends string>(machine: StateMachine<S>, id: string, from: S, to: S): void {
  if (!canTransition(machine, from, to)) {
    throw internal(`${machine.what} ${id}: illegal state change ${from} -> ${to}`);
  }
}
