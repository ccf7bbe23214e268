// Half-closes a connection once what was written is flushed; a peer that
// never closes its side must not pin the socket forever.
import type { Duplex } from 'node:stream';

export const CLOSE_GRACE_MS = 5000;

export function endSocket(socket: Duplex, graceMs = CLOSE_GRACE_MS): void {
  socket.end();
  const t = setTimeout(() => socket.destroy(), graceMs);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}
