import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log/logger';
import { defaultConfig } from '../../src/config/config';
import { StreamingServer } from '../../src/streaming/server';
import { connectSpdy, connectWebSocket, execSpdy, execWebSocket, isFailure } from '../helpers/stream_client';
import { localBackends } from '../helpers/local_backends';

describe('streaming: TLS', function () {
  this.timeout(20000);
  let dir: string;
  let server: StreamingServer;
  let cert: Buffer;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-stream-tls-'));
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', keyFile, '-out', certFile,
    ], { stdio: 'ignore' });
    cert = fs.readFileSync(certFile);
    server = new StreamingServer({
      address: '127.0.0.1',
      port: 0,
      tokenTtlSeconds: 60,
      backends: localBackends(),
      logger: silentLogger(),
      tls: { cert, key: fs.readFileSync(keyFile) },
    });
    await server.start();
  });

  after(async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const req = { containerId: 'c', cmd: ['sh', '-c', 'echo secure; exit 2'], tty: false, stdin: false, stdout: true, stderr: false };

  it('serves https:// URLs; SPDY and WebSocket work over TLS', async () => {
    const url = server.getExecUrl(req);
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/exec\//);
    const c = await connectSpdy(url, ['v4.channel.k8s.io'], { ca: cert });
    if (isFailure(c)) throw new Error(c.body);
    const r = await execSpdy(c, {});
    assert.equal(r.stdout, 'secure\n');
    assert.match(r.error, /"message":"2"/);
    const w = await connectWebSocket(server.getExecUrl(req), ['v5.channel.k8s.io'], { ca: cert });
    if (isFailure(w)) throw new Error(w.body);
    assert.equal((await execWebSocket(w, {})).stdout, 'secure\n');
  });

  it('an untrusted client fails the handshake', async () => {
    await assert.rejects(connectSpdy(server.getExecUrl(req), ['v4.channel.k8s.io']), /self[- ]signed|unable to verify/i);
  });

  it('takes its certificate from streaming.tls_cert_file / tls_key_file, and refuses half a pair', async () => {
    const config = defaultConfig();
    config.streaming.tls_cert_file = path.join(dir, 'cert.pem');
    config.streaming.tls_key_file = path.join(dir, 'key.pem');
    const s2 = StreamingServer.fromConfig(config, localBackends(), silentLogger());
    await s2.start();
    try {
      const url = s2.getExecUrl(req);
      assert.match(url, /^https:/);
      const c = await connectSpdy(url, ['v4.channel.k8s.io'], { ca: cert });
      if (isFailure(c)) throw new Error(c.body);
      assert.equal((await execSpdy(c, {})).stdout, 'secure\n');
    } finally {
      await s2.stop();
    }
    const half = defaultConfig();
    half.streaming.tls_cert_file = path.join(dir, 'cert.pem');
    assert.throws(() => StreamingServer.fromConfig(half, localBackends(), silentLogger()), /must be set together/);
    const missing = defaultConfig();
    missing.streaming.tls_cert_file = path.join(dir, 'nope.pem');
    missing.streaming.tls_key_file = path.join(dir, 'key.pem');
    assert.throws(() => StreamingServer.fromConfig(missing, localBackends(), silentLogger()), /streaming TLS: .*nope\.pem/);
  });
});
