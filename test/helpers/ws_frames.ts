// WebSocket frames written by hand, for tests that must send what no
// well-behaved client sends (floods, fragments split at will, invalid
// UTF-8, unmasked frames). berthd itself frames with the `ws` package.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { upgradeRequest, type ClientTls, type HttpFailure } from './stream_client';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;

/** One RFC 6455 frame; clients mask (`mask`), servers do not. */
export function encodeFrame(opcode: number, payload: Buffer, mask = true, fin = true): Buffer {
  const len = payload.length;
  const lenBytes = len >= 65536 ? 8 : len >= 126 ? 2 : 0;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  head[1] = (mask ? 0x80 : 0) | (lenBytes === 8 ? 127 : lenBytes === 2 ? 126 : len);
  if (lenBytes === 8) head.writeBigUInt64BE(BigInt(len), 2);
  else if (lenBytes === 2) head.writeUInt16BE(len, 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + lenBytes);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, body]);
}

/** A close frame's payload: the code, then the reason bytes as given (valid UTF-8 or not). */
export function closePayload(code: number, reason: Buffer): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(code);
  return Buffer.concat([out, reason]);
}

/** Upgrades to WebSocket by hand and hands back the raw socket. */
export async function rawWebSocket(url: string, protocols: string[], tls?: ClientTls): Promise<Duplex | HttpFailure> {
  const headers: Record<string, string> = {
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
  };
  if (protocols.length) headers['Sec-WebSocket-Protocol'] = protocols.join(', ');
  const r = await upgradeRequest(url, headers, tls, 'GET');
  if (!('socket' in r)) return r;
  r.socket.on('error', () => undefined); // berthd cutting a misbehaving client is what some tests wait for
  return r.socket;
}

/** Reads server frames (unmasked) off a raw socket until a close frame arrives; resolves its code. */
export function closeCodeFrom(socket: Duplex): Promise<number | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const op = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        if (op === OP_CLOSE) {
          socket.off('data', onData);
          return resolve(len >= 2 ? buf.readUInt16BE(off) : undefined);
        }
        buf = buf.subarray(off + len);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => resolve(undefined));
  });
}
