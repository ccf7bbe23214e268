import * as assert from 'node:assert/strict';
import { silentLogger } from '../../src/log/logger';
import { SystemdNotifier } from '../../src/daemon/sd_notify';
import { TestBerthd } from '../helpers/berthd';
import { NotifySocket } from '../helpers/notify_socket';

describe('systemd notification (Type=notify)', function () {
  this.timeout(60_000);
  let sock: NotifySocket | undefined;
  let berthd: TestBerthd | undefined;
  afterEach(async () => {
    await berthd?.cleanup();
    berthd = undefined;
    await sock?.stop();
    sock = undefined;
  });

  it('berthd sends READY=1 once serving and STOPPING=1 on SIGTERM, as its main PID', async () => {
    sock = await NotifySocket.start();
    berthd = await TestBerthd.start({ env: { NOTIFY_SOCKET: sock.address } });
    const pid = berthd.proc?.pid;
    const ready = await sock.waitFor('READY=1');
    assert.equal(ready.pid, pid, 'systemd (NotifyAccess=main) must see berthd itself as the sender');
    assert.ok(ready.msg.includes(`MAINPID=${pid}`));
    assert.match(ready.msg, /STATUS=serving CRI on /);
    assert.ok(berthd.output.includes('berthd serving'), 'READY=1 comes after the socket is served');
    assert.equal((await berthd.cri.runtime.Version({ version: '' })).runtimeName, 'berth');
    assert.equal(await berthd.stop('SIGTERM'), 0);
    const stopping = await sock.waitFor('STOPPING=1');
    assert.equal(stopping.pid, pid);
    assert.equal(sock.messages.filter((m) => m.msg.includes('READY=1')).length, 1);
  });

  it('speaks to an abstract socket (@name) too, and takes NOTIFY_SOCKET out of the environment', async () => {
    sock = await NotifySocket.start(true);
    process.env.NOTIFY_SOCKET = sock.address;
    const notifier = SystemdNotifier.fromEnvironment(silentLogger());
    assert.equal(process.env.NOTIFY_SOCKET, undefined, 'children (runc, shims) must not inherit it');
    assert.ok(notifier);
    assert.equal(await notifier.notify('STATUS=hello'), true);
    assert.equal(await notifier.notify('READY=1'), true);
    await notifier.close();
    // Sent is not yet read: the receiver reports each datagram in its own time.
    await sock.waitFor('READY=1');
    assert.deepEqual(
      sock.messages.map((m) => [m.pid, m.msg]),
      [
        [process.pid, 'STATUS=hello'],
        [process.pid, 'READY=1'],
      ],
    );
  });

  it('is off without NOTIFY_SOCKET, and reports an undeliverable message without failing', async () => {
    delete process.env.NOTIFY_SOCKET;
    assert.equal(SystemdNotifier.fromEnvironment(silentLogger()), undefined);
    process.env.NOTIFY_SOCKET = '/nonexistent/notify';
    const notifier = SystemdNotifier.fromEnvironment(silentLogger());
    assert.ok(notifier);
    assert.equal(await notifier.notify('READY=1'), false);
    await notifier.close();
  });
});
