// systemd's readiness protocol (sd_notify) for Type=notify: READY=1 once the
// CRI socket is served, STOPPING=1 when a shutdown begins, RELOADING=1 /
// READY=1 around a SIGHUP reload. Messages go through berth-notify
// (src/notify/PROTOCOL.md), started once: Node has no unix datagram sockets.
import { spawn, type ChildProcess } from 'node:child_process';
import { failedPrecondition } from '../errors';
import type { Logger } from '../log/logger';
import { findHelper } from '../runtime/handlers';

/** Where berth-notify is looked for: $BERTH_NOTIFY, the repo's build/, the install dirs, then PATH. */
export function findNotifyHelper(): string | undefined {
  return findHelper('berth-notify', 'BERTH_NOTIFY');
}

export class SystemdNotifier {
  private helper?: ChildProcess;
  private readonly replies: Array<(line: string) => void> = [];
  private buffered = '';

  private constructor(
    readonly socket: string,
    private readonly binary: string,
    private readonly logger: Logger,
  ) {}

  /**
   * The notifier for $NOTIFY_SOCKET, or undefined when berthd was not started
   * by systemd as Type=notify. NOTIFY_SOCKET is removed from the environment
   * so nothing berthd starts inherits it: runc would forward it into the
   * container and wait for the container's own READY=1.
   */
  static fromEnvironment(logger: Logger): SystemdNotifier | undefined {
    const socket = process.env.NOTIFY_SOCKET;
    delete process.env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    const binary = findNotifyHelper();
    if (!binary) {
      throw failedPrecondition(
        `NOTIFY_SOCKET is set (systemd Type=notify) but the berth-notify helper was not found (build it with \`make\`, install it in /usr/local/libexec/berth, or set BERTH_NOTIFY)`,
      );
    }
    return new SystemdNotifier(socket, binary, logger);
  }

  private start(): ChildProcess {
    const child = spawn(this.binary, [String(process.pid)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { NOTIFY_SOCKET: this.socket },
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        this.replies.shift()?.(line);
      }
    });
    child.stderr?.on('data', (b: Buffer) => this.logger.warn('berth-notify', { message: b.toString().trim() }));
    child.on('error', (err) => this.logger.warn('berth-notify failed', { error: err.message }));
    child.once('exit', () => {
      for (const r of this.replies.splice(0)) r('error: berth-notify exited');
      this.helper = undefined;
    });
    child.stdin?.on('error', () => undefined); // an exited helper: reported through its replies
    return child;
  }

  /** Sends one message ("READY=1", "STATUS=...\nREADY=1"). Never throws: systemd's view is advisory to berthd. */
  async notify(message: string): Promise<boolean> {
    const helper = (this.helper ??= this.start());
    const reply = new Promise<string>((resolve) => this.replies.push(resolve));
    helper.stdin?.write(message.replaceAll('\0', '') + '\0');
    const line = await reply;
    if (line !== 'ok') this.logger.warn('systemd notification not delivered', { message: message.split('\n')[0], reply: line });
    return line === 'ok';
  }

  /** Lets the helper exit (stdin EOF) and waits for it, briefly. */
  async close(): Promise<void> {
    const helper = this.helper;
    if (!helper) return;
    const exited = new Promise<void>((r) => helper.once('exit', () => r()));
    helper.stdin?.end();
    const timer = setTimeout(() => helper.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
