import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CriServer } from '../../src/cri/server';
import { CriClient } from '../../src/client/cri_client';
import { defaultConfig } from '../../src/config/config';
import { testCriContext } from '../helpers/cri_context';

describe('CriServer shutdown', () => {
  it('lets an in-flight RPC finish, then stops; cuts one that outlives the bound', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-srv-'));
    const config = defaultConfig();
    const ctx = testCriContext({ config });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const server = new CriServer(ctx, undefined, {
      Version: async () => {
        await gate;
        return { version: '0.1.0', runtimeName: 'slow', runtimeVersion: '1', runtimeApiVersion: 'v1' };
      },
      Status: () => new Promise(() => undefined), // never answers
    });
    const sock = path.join(dir, 's.sock');
    await server.bind(sock);
    const client = new CriClient(sock);
    try {
      const slow = client.runtime.Version({ version: '' });
      while (server.activeCalls === 0) await new Promise((r) => setTimeout(r, 5));
      const stopped = server.shutdown(5000);
      setTimeout(release, 200);
      const res = await slow;
      assert.equal(res.runtimeName, 'slow');
      await stopped;

      const server2 = new CriServer(ctx, undefined, { Status: () => new Promise(() => undefined) });
      const sock2 = path.join(dir, 's2.sock');
      await server2.bind(sock2);
      const client2 = new CriClient(sock2);
      const hung = client2.runtime.Status({ verbose: false }).then(
        () => 'answered',
        () => 'cut',
      );
      while (server2.activeCalls === 0) await new Promise((r) => setTimeout(r, 5));
      const t0 = Date.now();
      await server2.shutdown(300);
      assert.equal(await hung, 'cut');
      assert.ok(Date.now() - t0 < 5000);
      client2.close();
    } finally {
      client.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
