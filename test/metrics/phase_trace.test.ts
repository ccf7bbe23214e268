// PhaseTrace: each phase reaches the sink (failed ones too), names must be
// label values, and the debug line lists every phase with the call's total.
import * as assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import * as winston from 'winston';
import { PhaseTrace, type PhaseRpc } from '../../src/metrics/phase_trace';

function sink(): { seen: Array<[PhaseRpc, string, number]>; podPhase(rpc: PhaseRpc, phase: string, seconds: number): void } {
  const seen: Array<[PhaseRpc, string, number]> = [];
  return { seen, podPhase: (rpc, phase, seconds) => void seen.push([rpc, phase, seconds]) };
}

function captureLogger(level: string): { logger: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: winston.createLogger({ level, format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] }), lines };
}

describe('PhaseTrace', () => {
  it('records each phase, a failed one too, then the total', async () => {
    const s = sink();
    const t = new PhaseTrace('create_container', s);
    assert.equal(await t.time('spec', () => 7), 7);
    await assert.rejects(t.time('shim_create', () => Promise.reject(new Error('boom'))), /boom/);
    t.finish(captureLogger('info').logger, {});
    assert.deepEqual(s.seen.map(([rpc, p]) => `${rpc}/${p}`), ['create_container/spec', 'create_container/shim_create', 'create_container/total']);
    assert.ok(s.seen.every(([, , sec]) => sec >= 0));
  });

  it('refuses a phase name that is not a label value', async () => {
    const t = new PhaseTrace('run_pod_sandbox', sink());
    await assert.rejects(t.time('Pin Namespaces', () => undefined), /not a label value/);
  });

  it('logs one debug line naming every phase in milliseconds, and nothing above debug', async () => {
    const debug = captureLogger('debug');
    const t = new PhaseTrace('run_pod_sandbox', sink());
    await t.time('pin', () => new Promise((r) => setTimeout(r, 5)));
    t.finish(debug.logger, { pod: 'p1' });
    assert.equal(debug.lines.length, 1);
    const line = JSON.parse(debug.lines[0]) as { message: string; rpc: string; pod: string; phasesMs: Record<string, number> };
    assert.equal(line.message, 'phase trace');
    assert.equal(line.rpc, 'run_pod_sandbox');
    assert.equal(line.pod, 'p1');
    assert.ok(line.phasesMs.pin >= 1, JSON.stringify(line));
    assert.ok(line.phasesMs.total >= line.phasesMs.pin);

    const info = captureLogger('info');
    new PhaseTrace('start_container', sink()).finish(info.logger, {});
    assert.equal(info.lines.length, 0);
  });
});
