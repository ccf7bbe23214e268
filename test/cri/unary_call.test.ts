// A unary handler's view of its call: the abort signal, made only when the
// handler asks, fires when the client gives up, whether the handler asked
// before or after; and the gRPC series count the calls exactly.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriServer } from '../../src/cri/server';
import { CriClient } from '../../src/client/cri_client';
import { defaultConfig } from '../../src/config/config';
import type { CallInfo } from '../../src/cri/context';
import { Metrics } from '../../src/metrics/metrics';
import { testCriContext } from '../helpers/cri_context';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('CriServer unary calls', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-unary-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("aborts a handler's signal when the client gives up, asked for before or after", async () => {
    const seen: string[] = [];
    let askLate: (() => void) | undefined;
    const server = new CriServer(testCriContext({ config: defaultConfig() }), undefined, {
      // Asks at once, then waits for the abort.
      Version: (_ctx: unknown, _req: unknown, call: CallInfo) =>
        new Promise((resolve) => {
          call.signal.addEventListener('abort', () => {
            seen.push('early');
            resolve({});
          });
        }),
      // Asks only once the client has gone.
      Status: (_ctx: unknown, _req: unknown, call: CallInfo) =>
        new Promise((resolve) => {
          askLate = () => {
            seen.push(call.signal.aborted ? 'late aborted' : 'late not aborted');
            resolve({});
          };
        }),
    });
    const sock = path.join(dir, 's.sock');
    await server.bind(sock);
    const client = new CriClient(sock);
    try {
      await assert.rejects(client.runtime.Version({ version: '' }, { deadlineMs: 100 }), /DEADLINE_EXCEEDED|Deadline/i);
      await assert.rejects(client.runtime.Status({ verbose: false }, { deadlineMs: 100 }), /DEADLINE_EXCEEDED|Deadline/i);
      while (seen.length === 0 || askLate === undefined) await sleep(5);
      await sleep(200); // the server has seen the second call cancelled (its deadline is the same)
      askLate();
      assert.deepEqual(seen, ['early', 'late aborted']);
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  });

  it('counts started and handled calls and their durations in the gRPC series', async () => {
    const metrics = new Metrics('test', { processMetrics: false });
    const server = new CriServer(testCriContext({ config: defaultConfig() }), metrics);
    const sock = path.join(dir, 's.sock');
    await server.bind(sock);
    const client = new CriClient(sock);
    try {
      for (let i = 0; i < 3; i++) await client.runtime.Version({ version: '' });
      await assert.rejects(client.runtime.CheckpointContainer({ containerId: '' }));
      const text = await metrics.registry.metrics();
      const version = 'grpc_type="unary",grpc_service="runtime.v1.RuntimeService",grpc_method="Version"';
      assert.match(text, new RegExp(`^grpc_server_started_total\\{${version}\\} 3$`, 'm'));
      assert.match(text, new RegExp(`^grpc_server_handled_total\\{${version},grpc_code="OK"\\} 3$`, 'm'));
      assert.match(text, new RegExp(`^grpc_server_handling_seconds_count\\{${version}\\} 3$`, 'm'));
      assert.match(text, new RegExp(`^grpc_server_handling_seconds_bucket\\{le="\\+Inf",${version}\\} 3$`, 'm'));
      assert.match(text, /^grpc_server_handled_total\{.*grpc_method="CheckpointContainer",grpc_code="InvalidArgument"\} 1$/m);
      // A second read counts nothing twice.
      await client.runtime.Version({ version: '' });
      assert.match(await metrics.registry.metrics(), new RegExp(`^grpc_server_started_total\\{${version}\\} 4$`, 'm'));
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  });
});
