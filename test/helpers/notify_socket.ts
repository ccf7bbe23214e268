// A stand-in for systemd's notify socket: a unix datagram socket (Node has
// none, so python3 holds it) that reports each message with the sender's
// credentials (SO_PASSCRED), as systemd sees them.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const RECEIVER = `
import json, os, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print(json.dumps({"listening": True}), flush=True)
while True:
    msg, anc, flags, _ = s.recvmsg(8192, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack('iII', data[:12])[0]
    print(json.dumps({"pid": pid, "msg": msg.decode()}), flush=True)
`;

export interface Notification {
  pid: number;
  msg: string;
}

export class NotifySocket {
  readonly messages: Notification[] = [];
  private constructor(
    readonly address: string,
    private readonly proc: ChildProcess,
    private readonly dir: string,
  ) {}

  /** Binds a socket at a temporary path, or at the abstract `@name` when `abstract` is set. */
  static async start(abstract = false): Promise<NotifySocket> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-notify-'));
    const address = abstract ? `@berth-test-notify-${process.pid}-${Date.now()}` : path.join(dir, 'notify');
    const proc = spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
    const sock = new NotifySocket(address, proc, dir);
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`notify receiver exited ${code}`)));
      proc.stdout?.on('data', (b: Buffer) => {
        buf += b.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const doc = JSON.parse(buf.slice(0, nl)) as { listening?: boolean; pid?: number; msg?: string };
          buf = buf.slice(nl + 1);
          if (doc.listening) resolve();
          else sock.messages.push({ pid: doc.pid ?? 0, msg: doc.msg ?? '' });
        }
      });
    });
    return sock;
  }

  /** Waits until a message containing `line` (e.g. "READY=1") has arrived. */
  async waitFor(line: string, timeoutMs = 30_000): Promise<Notification> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find((n) => n.msg.split('\n').includes(line));
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no ${line} on the notify socket; got ${JSON.stringify(this.messages)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.pid !== undefined) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      process.kill(this.proc.pid, 'SIGTERM');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
