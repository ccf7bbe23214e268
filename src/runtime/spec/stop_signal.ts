// ContainerConfig.stop_signal (cri-api v0.33+): the CRI's Signal enum to the
// signal runc is asked to send, and back for ContainerStatus.stop_signal.
// The real-time signals are numbers as glibc counts them (SIGRTMIN = 34,
// SIGRTMAX = 64), the numbering containerd's signal table uses; runc kill
// takes a number as is.
import { constants as osConstants } from 'node:os';
import type { Signal__Output } from '../../gen/runtime/v1/Signal';

const RTMIN = 34;
const RTMAX = 64;
/** Enum names Node does not know: aliases of signals it does. */
const ALIASES: Record<string, string> = { SIGCLD: 'SIGCHLD' };

/** The signal number of a CRI Signal name; undefined for RUNTIME_DEFAULT and names no kernel signal has. */
function enumNumber(name: string): number | undefined {
  const signals = osConstants.signals as Record<string, number>;
  const known = signals[ALIASES[name] ?? name];
  if (known !== undefined) return known;
  if (name === 'SIGRTMIN') return RTMIN;
  if (name === 'SIGRTMAX') return RTMAX;
  const plus = /^SIGRTMINPLUS(\d+)$/.exec(name);
  if (plus) return RTMIN + Number(plus[1]);
  const minus = /^SIGRTMAXMINUS(\d+)$/.exec(name);
  if (minus) return RTMAX - Number(minus[1]);
  return undefined;
}

/**
 * The stop signal ContainerConfig asks for, as StopContainer passes it to
 * the runtime (a name Node knows, or a real-time signal's number);
 * undefined for RUNTIME_DEFAULT, where the image's StopSignal or SIGTERM applies.
 */
export function configStopSignal(sig: Signal__Output | undefined): string | undefined {
  if (!sig || sig === 'RUNTIME_DEFAULT') return undefined;
  const signals = osConstants.signals as Record<string, number>;
  if (signals[sig] !== undefined) return sig;
  const n = enumNumber(sig);
  return n === undefined ? undefined : String(n);
}

/** The CRI Signal naming the signal a container is stopped with (RUNTIME_DEFAULT if the enum has none for it). */
export function signalEnumOf(signal: string): Signal__Output {
  const trimmed = signal.trim().toUpperCase();
  if (!trimmed) return 'SIGTERM';
  const signals = osConstants.signals as Record<string, number>;
  const n = /^\d+$/.test(trimmed) ? Number(trimmed) : signals[trimmed.startsWith('SIG') ? trimmed : `SIG${trimmed}`];
  if (n === undefined) return 'RUNTIME_DEFAULT';
  const byName = Object.keys(signals).find((k) => signals[k] === n && enumNumber(k) === n && k !== 'SIGIOT' && k !== 'SIGPOLL');
  if (byName) return byName as Signal__Output;
  if (n === RTMIN) return 'SIGRTMIN';
  if (n === RTMAX) return 'SIGRTMAX';
  if (n > RTMIN && n <= RTMIN + 15) return `SIGRTMINPLUS${n - RTMIN}` as Signal__Output;
  if (n >= RTMAX - 14 && n < RTMAX) return `SIGRTMAXMINUS${RTMAX - n}` as Signal__Output;
  return 'RUNTIME_DEFAULT';
}
