// The CRI gRPC server: registers RuntimeService and ImageService, wrapping
// every handler with request validation of the wire format, logging, metrics
// and the error-to-status mapping. RPCs without a handler answer
// UNIMPLEMENTED naming the RPC.
import * as grpc from '@grpc/grpc-js';
import { replySerializer } from './encoded_reply';
import { loadCri } from '../proto';
import type { Metrics } from '../metrics/metrics';
import { invalidArgument, unimplemented } from '../errors';
import type { CallInfo, CriContext } from './context';
import { checkRequestBounds } from './bounds';
import { clipText, codeName, toServiceError } from './status_map';
import { HANDLERS, STREAM_HANDLERS, type Handler, type StreamHandler } from './handlers';
import { quietTrimmer, type QuietTrimmer } from '../util/malloc_trim';
import type { UnaryTally } from '../metrics/unary_tally';
import { levelEnabled } from '../log/logger';

/** Marks a request whose bytes did not decode, so it gets INVALID_ARGUMENT rather than INTERNAL. */
class MalformedRequest {
  constructor(readonly reason: string) {}
}

/** Request data echoed in a log line: ids are 64 bytes, so anything longer is cut (it is logged before the bounds check). */
const MAX_LOGGED_ID_BYTES = 128;
/** A stack is logged for internal faults; its first line repeats the message, which may echo request data. */
const MAX_LOGGED_STACK_BYTES = 8192;

/** Pod and container ids a request or response concerns, for the log line. */
function subjectIds(obj: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof obj !== 'object' || obj === null) return out;
  const o = obj as Record<string, unknown>;
  if (typeof o.podSandboxId === 'string' && o.podSandboxId) out.pod = clipText(o.podSandboxId, MAX_LOGGED_ID_BYTES);
  if (typeof o.containerId === 'string' && o.containerId) out.container = clipText(o.containerId, MAX_LOGGED_ID_BYTES);
  return out;
}

function wrapDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(def)) {
    out[name] = {
      ...method,
      responseSerialize: replySerializer(method),
      requestDeserialize: (buf: Buffer): unknown => {
        try {
          return method.requestDeserialize(buf);
        } catch (err) {
          return new MalformedRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

/**
 * What a unary handler knows of its call. grpc-js reports every call as
 * cancelled once its stream closes, answered or not, and few handlers look
 * at the signal: so the AbortController, and the listener that aborts it,
 * are made only when a handler asks.
 */
class UnaryCallInfo implements CallInfo {
  private controller?: AbortController;

  constructor(private readonly call: grpc.ServerUnaryCall<unknown, unknown>) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      const controller = (this.controller = new AbortController());
      // grpc-js sets `cancelled` before it emits 'cancelled'.
      if (this.call.cancelled) controller.abort();
      else this.call.once('cancelled', () => controller.abort());
    }
    return this.controller.signal;
  }
}

export class CriServer {
  readonly grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });
  private inFlight = 0;
  /** Open server streams: ended at shutdown, they would otherwise hold it up until the bound. */
  private readonly streams = new Set<AbortController>();

  constructor(
    private readonly ctx: CriContext,
    private readonly metrics: Metrics | undefined,
    private readonly handlers: Record<string, Handler | undefined> = HANDLERS,
    private readonly streamHandlers: Record<string, StreamHandler | undefined> = STREAM_HANDLERS,
    /** Told each time a call begins and ends, so freed memory goes back once berthd is quiet. */
    private readonly trimmer: Pick<QuietTrimmer, 'activity'> = quietTrimmer,
  ) {
    const cri = loadCri();
    this.register('runtime.v1.RuntimeService', cri.runtime.v1.RuntimeService.service);
    this.register('runtime.v1.ImageService', cri.runtime.v1.ImageService.service);
  }

  get activeCalls(): number {
    return this.inFlight;
  }

  private register(serviceName: string, def: grpc.ServiceDefinition): void {
    const wrapped = wrapDefinition(def);
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [method, m] of Object.entries(def)) {
      const handler = this.handlers[method];
      const grpcType = m.responseStream ? (m.requestStream ? 'bidi_stream' : 'server_stream') : 'unary';
      const streamHandler = this.streamHandlers[method];
      if (m.responseStream && !m.requestStream && streamHandler) {
        impl[method] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
          void this.handleServerStream(serviceName, method, streamHandler, call);
        };
        continue;
      }
      if (m.responseStream || m.requestStream) {
        impl[method] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
          this.metrics?.started.inc({ grpc_type: grpcType, grpc_service: serviceName, grpc_method: method });
          const err = toServiceError(unimplemented(`${method} is not implemented by berth`));
          this.metrics?.handled.inc({
            grpc_type: grpcType,
            grpc_service: serviceName,
            grpc_method: method,
            grpc_code: codeName(err.code),
          });
          call.emit('error', err);
        };
        continue;
      }
      const tally = this.metrics?.unaryTally(serviceName, method);
      impl[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        // The handler may stop waiting when the client gives up (cancel or deadline).
        void this.handleUnary(method, tally, handler, call.request, callback, new UnaryCallInfo(call));
      };
    }
    this.grpcServer.addService(wrapped, impl);
  }

  private async handleUnary(
    method: string,
    tally: UnaryTally | undefined,
    handler: Handler | undefined,
    request: unknown,
    callback: grpc.sendUnaryData<unknown>,
    info: UnaryCallInfo,
  ): Promise<void> {
    tally?.begin();
    const started = process.hrtime.bigint();
    this.inFlight++;
    this.trimmer.activity();
    let code = grpc.status.OK;
    let response: unknown;
    try {
      if (request instanceof MalformedRequest) {
        throw invalidArgument(`${method}: malformed request message: ${request.reason}`);
      }
      checkRequestBounds(method, request);
      if (!handler) throw unimplemented(`${method} is not implemented by berth`);
      response = await handler(this.ctx, request as never, info);
      callback(null, response);
    } catch (err) {
      const se = toServiceError(err);
      code = se.code;
      const ids = subjectIds(request);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const level = code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN ? 'error' : 'warn';
      if (code === grpc.status.UNIMPLEMENTED || code === grpc.status.NOT_FOUND) {
        this.ctx.logger.debug(`${method} failed`, { method, code: codeName(code), ms, error: se.details, ...ids });
      } else {
        this.ctx.logger.log(level, `${method} failed`, {
          method,
          code: codeName(code),
          ms,
          error: se.details,
          ...(level === 'error' && err instanceof Error && err.stack ? { stack: clipText(err.stack, MAX_LOGGED_STACK_BYTES) } : {}),
          ...ids,
        });
      }
      callback(se);
    } finally {
      this.inFlight--;
      this.trimmer.activity();
      tally?.end(codeName(code), Number(process.hrtime.bigint() - started) / 1e9);
      // Fields are built only when the line is written: at info, an RPC costs no log work.
      if (code === grpc.status.OK && levelEnabled(this.ctx.logger, 'debug')) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const ids = { ...subjectIds(response), ...subjectIds(request) };
        this.ctx.logger.debug(method, { method, code: 'OK', ms: Math.round(ms * 1000) / 1000, ...ids });
      }
    }
  }

  private async handleServerStream(
    service: string,
    method: string,
    handler: StreamHandler,
    call: grpc.ServerWritableStream<unknown, unknown>,
  ): Promise<void> {
    const labels = { grpc_type: 'server_stream', grpc_service: service, grpc_method: method };
    this.metrics?.started.inc(labels);
    const gone = new AbortController();
    let clientGone = false;
    const leave = (): void => {
      clientGone = true;
      gone.abort();
    };
    call.once('cancelled', leave);
    call.once('close', leave);
    call.once('error', leave);
    this.streams.add(gone);
    this.trimmer.activity();
    let code = grpc.status.OK;
    try {
      if (call.request instanceof MalformedRequest) {
        throw invalidArgument(`${method}: malformed request message: ${call.request.reason}`);
      }
      checkRequestBounds(method, call.request);
      this.ctx.logger.debug(`${method} stream opened`, { method });
      await handler(this.ctx, call.request as never, {
        write: (msg: never) => void call.write(msg),
        get backlog() {
          return call.writableLength;
        },
        ready: () =>
          new Promise<void>((resolve) => {
            if (!call.writableNeedDrain || gone.signal.aborted) return resolve();
            const done = (): void => {
              call.off('drain', done);
              gone.signal.removeEventListener('abort', done);
              resolve();
            };
            call.once('drain', done);
            gone.signal.addEventListener('abort', done, { once: true });
          }),
        signal: gone.signal,
      });
      // Ended by the handler or by our shutdown: close it properly for the client.
      if (!clientGone) call.end();
    } catch (err) {
      const se = toServiceError(err);
      code = se.code;
      this.ctx.logger.warn(`${method} stream failed`, { method, code: codeName(code), error: se.details });
      if (!clientGone) call.emit('error', se);
    } finally {
      this.streams.delete(gone);
      this.trimmer.activity();
      this.metrics?.handled.inc({ ...labels, grpc_code: codeName(code) });
      this.ctx.logger.debug(`${method} stream closed`, { method, code: codeName(code) });
    }
  }

  bind(socketPath: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.grpcServer.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Stops accepting; lets in-flight RPCs finish for up to timeoutMs, then cuts them. */
  shutdown(timeoutMs: number): Promise<void> {
    for (const s of this.streams) s.abort();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, timeoutMs);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
