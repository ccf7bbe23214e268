// Exec and attach sessions: the kubelet's remotecommand protocol over SPDY
// (one SPDY stream per role, named by the streamType header) or over a
// WebSocket (one channel per role). Both end the same way: output flushed,
// then the status written on the error stream, then the connection closed.
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from '../log/logger';
import { errorMessage } from '../errors';
import type { AttachBackend, ExecBackend, StreamSession, TerminalSize } from './backend';
import { RST_PROTOCOL_ERROR, type SpdySession, type SpdyStream } from './spdy';
import {
  encodeStatusV1,
  encodeStatusV4,
  exitCodeStatus,
  internalErrorStatus,
  successStatus,
  type K8sStatus,
} from './status';
import { DeferredWritable } from './deferred_writable';
import { codecFor, WebSocketChannels, type ChannelMode } from './ws_channels';
import type { WebSocketConnection } from './websocket';

export interface RemoteCommandRequest {
  kind: 'exec' | 'attach';
  containerId: string;
  /** exec only. */
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** SPDY subprotocols we accept (X-Stream-Protocol-Version), in our preference order. */
export const SPDY_REMOTECOMMAND_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
] as const;

/** WebSocket subprotocols we accept; '' is a client that named none (binary, v1 errors). */
export const WS_REMOTECOMMAND_PROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
] as const;

export interface SessionOptions {
  logger: Logger;
  /** How long a SPDY client has to open all of its streams. */
  streamCreationTimeoutMs: number;
}

export interface RemoteCommandBackends {
  exec: ExecBackend;
  attach: AttachBackend;
}

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;

/** v4 and later write a Status document; older protocols the bare error text. */
function statusEncoder(protocol: string): (s: K8sStatus) => Buffer {
  return protocol.startsWith('v4.') || protocol.startsWith('v5.') ? encodeStatusV4 : encodeStatusV1;
}

/**
 * Splits a byte stream of concatenated JSON objects (what Go's json.Encoder
 * writes on the resize stream) into parsed objects.
 */
export class JsonObjectSplitter {
  private text = '';

  push(chunk: Buffer | string): unknown[] {
    this.text += chunk.toString();
    const out: unknown[] = [];
    let depth = 0;
    let inString = false;
    let escaped = false;
    let start = -1;
    let consumed = 0;
    for (let i = 0; i < this.text.length; i++) {
      const c = this.text[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === '\\') escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '{') {
        if (depth++ === 0) start = i;
      } else if (c === '}' && depth > 0 && --depth === 0) {
        try {
          out.push(JSON.parse(this.text.slice(start, i + 1)));
        } catch {
          // A malformed size is skipped, like a failed decode in the kubelet.
        }
        consumed = i + 1;
      }
    }
    // Whatever is outside an object (whitespace, newlines) is dropped.
    this.text = depth === 0 ? '' : this.text.slice(Math.max(consumed, start));
    if (this.text.length > 64 * 1024) throw new Error('resize message too large');
    return out;
  }
}

function toSize(v: unknown): TerminalSize | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const w = o.Width ?? o.width;
  const h = o.Height ?? o.height;
  if (typeof w !== 'number' || typeof h !== 'number' || w < 0 || h < 0 || w > 65535 || h > 65535) return undefined;
  return { width: Math.floor(w), height: Math.floor(h) };
}

/** Feeds resize messages to the backend's listener, replaying the latest to a late listener. */
class ResizeQueue {
  private latest: TerminalSize | undefined;
  private listener: ((s: TerminalSize) => void) | undefined;

  constructor(source: Readable | null, logger: Logger) {
    if (!source) return;
    const splitter = new JsonObjectSplitter();
    source.on('data', (chunk: Buffer) => {
      let objs: unknown[];
      try {
        objs = splitter.push(chunk);
      } catch (err) {
        logger.debug('dropping resize stream', { error: errorMessage(err) });
        source.destroy();
        return;
      }
      for (const o of objs) {
        const size = toSize(o);
        if (size) this.emit(size);
      }
    });
  }

  private emit(size: TerminalSize): void {
    this.latest = size;
    if (this.listener) {
      try {
        this.listener(size);
      } catch {
        // A backend failing to resize must not break the session.
      }
    }
  }

  on(listener: (s: TerminalSize) => void): void {
    this.listener = listener;
    if (this.latest) listener(this.latest);
  }
}

/** Ends an output stream and waits until it is flushed (or the connection died). */
async function endAndFlush(w: Writable | null): Promise<void> {
  if (!w) return;
  if (!w.writableEnded) w.end();
  try {
    await finished(w, { readable: false });
  } catch {
    // The connection went away; nothing left to flush.
  }
}

interface WiredSession {
  stdin: Readable | null;
  stdout: Writable | null;
  stderr: Writable | null;
  resize: Readable | null;
  writeStatus: (s: K8sStatus) => Promise<void>;
  close: () => void;
  signal: AbortSignal;
}

async function run(
  req: RemoteCommandRequest,
  wired: WiredSession,
  backends: RemoteCommandBackends,
  logger: Logger,
): Promise<void> {
  const resize = new ResizeQueue(req.tty ? wired.resize : null, logger);
  const session: StreamSession = {
    tty: req.tty,
    stdin: wired.stdin,
    stdout: wired.stdout,
    stderr: req.tty ? null : wired.stderr,
    onResize: (l) => resize.on(l),
    signal: wired.signal,
  };
  let status: K8sStatus;
  try {
    if (req.kind === 'exec') {
      const code = await backends.exec.exec(req.containerId, req.cmd, session);
      status = code === 0 ? successStatus() : exitCodeStatus(req.cmd, code);
    } else {
      await backends.attach.attach(req.containerId, session);
      status = successStatus();
    }
  } catch (err) {
    logger.debug(`${req.kind} failed`, { container: req.containerId, error: errorMessage(err) });
    status = internalErrorStatus(errorMessage(err));
  }
  if (wired.signal.aborted) return;
  await Promise.all([endAndFlush(wired.stdout), endAndFlush(wired.stderr)]);
  if (wired.signal.aborted) return;
  await wired.writeStatus(status);
  wired.close();
}

/**
 * Serves an exec/attach over an upgraded SPDY session.
 *
 * The client opens its streams one at a time, each waiting for our reply
 * (client-go does), while starting a process in a container takes far longer
 * than a round trip. So an exec starts as soon as the streams that feed the
 * process exist (stdin, and resize with a terminal; none for a plain exec)
 * instead of after all of them, as the kubelet's server does. Output
 * produced before its stream opens waits, bounded, in a DeferredWritable; the
 * status waits for the error stream. A client that does not open every
 * expected stream within streamCreationTimeoutMs loses the connection, and
 * with it the process (killed and reaped through the session's signal).
 */
export function serveRemoteCommandSpdy(
  spdy: SpdySession,
  protocol: string,
  req: RemoteCommandRequest,
  backends: RemoteCommandBackends,
  opts: SessionOptions,
): Promise<void> {
  const abort = new AbortController();
  spdy.once('close', () => abort.abort());
  const supportsResize = protocol !== 'v2.channel.k8s.io';
  const expected = new Set<string>(['error']);
  const inputs: string[] = [];
  if (req.stdin) inputs.push('stdin');
  if (req.tty && supportsResize) inputs.push('resize');
  for (const t of inputs) expected.add(t);
  if (req.stdout) expected.add('stdout');
  if (req.stderr && !req.tty) expected.add('stderr');
  // An attach joins a live container: it waits for every stream, as the kubelet's does, so a
  // client slow to open them is not disconnected by the shim for falling behind its output.
  const startAfter = req.kind === 'exec' ? inputs : expected;
  const outputs = new Map<string, DeferredWritable>();
  for (const t of ['stdout', 'stderr']) if (expected.has(t)) outputs.set(t, new DeferredWritable());
  const streams = new Map<string, SpdyStream>();
  const encode = statusEncoder(protocol);
  let allOpened: () => void = () => undefined;
  // Settles when every expected stream is open, or when the session ends without them.
  const opened = new Promise<void>((r) => (allOpened = r));
  abort.signal.addEventListener('abort', () => {
    allOpened();
    for (const o of outputs.values()) o.destroy();
  });

  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      opts.logger.debug('timed out waiting for client streams', { got: [...streams.keys()] });
      spdy.destroy();
    }, opts.streamCreationTimeoutMs);
    spdy.once('close', () => clearTimeout(timer));
    let started = false;
    const giveUp = (): void => {
      if (!started) resolve();
    };
    spdy.once('close', giveUp);
    const startWhenInputsOpen = (): void => {
      if (started || abort.signal.aborted || ![...startAfter].every((t) => streams.has(t))) return;
      started = true;
      const wired: WiredSession = {
        stdin: streams.get('stdin') ?? null,
        stdout: outputs.get('stdout') ?? null,
        stderr: outputs.get('stderr') ?? null,
        resize: streams.get('resize') ?? null,
        signal: abort.signal,
        writeStatus: async (s) => {
          await opened;
          const errorStream = streams.get('error');
          if (!errorStream || abort.signal.aborted) return;
          const body = encode(s);
          if (body.length) errorStream.write(body);
          await endAndFlush(errorStream);
        },
        close: () => {
          for (const s of streams.values()) if (!s.writableEnded) s.end();
          spdy.close();
        },
      };
      run(req, wired, backends, opts.logger).then(resolve, (err: unknown) => {
        opts.logger.warn('streaming session failed', { error: errorMessage(err) });
        spdy.destroy();
        resolve();
      });
    };
    spdy.on('stream', (stream: SpdyStream) => {
      const type = stream.header('streamtype') ?? '';
      stream.reply();
      if (!expected.has(type) || streams.has(type)) {
        stream.reset(RST_PROTOCOL_ERROR);
        return;
      }
      streams.set(type, stream);
      // Streams we only write to: discard anything the client sends on them.
      if (type !== 'stdin' && type !== 'resize') stream.resume();
      outputs.get(type)?.attach(stream);
      if (streams.size === expected.size) {
        clearTimeout(timer);
        allOpened();
      }
      startWhenInputsOpen();
    });
    startWhenInputsOpen();
  });
}

/** Serves an exec/attach over an upgraded WebSocket. */
export async function serveRemoteCommandWebSocket(
  ws: WebSocketConnection,
  protocol: string,
  req: RemoteCommandRequest,
  backends: RemoteCommandBackends,
  opts: SessionOptions,
): Promise<void> {
  const abort = new AbortController();
  ws.once('close', () => abort.abort());
  const modes: ChannelMode[] = [
    req.stdin ? 'read' : 'ignore',
    req.stdout ? 'write' : 'ignore',
    req.stderr && !req.tty ? 'write' : 'ignore',
    'write',
    req.tty ? 'read' : 'ignore',
  ];
  const channels = new WebSocketChannels(ws, codecFor(protocol), modes);
  // Like the kubelet: an empty message on the lowest writable channel tells
  // the client the session is established.
  channels.writeRaw(req.stdout ? STDOUT : req.stderr && !req.tty ? STDERR : ERROR, Buffer.alloc(0));
  const encode = statusEncoder(protocol);
  const errorWriter = channels.writers[ERROR] as Writable;
  const wired: WiredSession = {
    stdin: channels.readers[STDIN],
    stdout: channels.writers[STDOUT],
    stderr: channels.writers[STDERR],
    resize: channels.readers[RESIZE],
    signal: abort.signal,
    writeStatus: async (s) => {
      const body = encode(s);
      if (body.length) errorWriter.write(body);
      await endAndFlush(errorWriter);
    },
    close: () => ws.close(),
  };
  try {
    await run(req, wired, backends, opts.logger);
  } catch (err) {
    opts.logger.warn('streaming session failed', { error: errorMessage(err) });
    ws.destroy();
  }
}
