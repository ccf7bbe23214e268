import * as assert from 'node:assert/strict';
import type { Signal__Output } from '../../src/gen/runtime/v1/Signal';
import { configStopSignal, signalEnumOf } from '../../src/runtime/spec/stop_signal';

describe('runtime/spec: stop signals between the CRI enum and runc', () => {
  it('maps the enum to what runc kill takes: names, aliases and real-time numbers', () => {
    const cases: [Signal__Output | undefined, string | undefined][] = [
      ['RUNTIME_DEFAULT', undefined], [undefined, undefined], ['SIGQUIT', 'SIGQUIT'], ['SIGCLD', '17'],
      ['SIGRTMIN', '34'], ['SIGRTMINPLUS15', '49'], ['SIGRTMAXMINUS1', '63'], ['SIGRTMAX', '64'],
    ];
    for (const [sig, want] of cases) assert.equal(configStopSignal(sig), want, String(sig));
  });

  it('reports the signal a record holds as the enum', () => {
    const cases: [string, Signal__Output][] = [
      ['', 'SIGTERM'], ['SIGUSR1', 'SIGUSR1'], ['quit', 'SIGQUIT'], ['9', 'SIGKILL'], ['6', 'SIGABRT'],
      ['36', 'SIGRTMINPLUS2'], ['60', 'SIGRTMAXMINUS4'], ['SIGNOPE', 'RUNTIME_DEFAULT'],
    ];
    for (const [held, want] of cases) assert.equal(signalEnumOf(held), want, held);
  });
});
