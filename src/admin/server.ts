// berthd's admin endpoint: HTTP/1.1 on a unix socket (<state>/admin.sock,
// mode 0600, so root only; never TCP) for operations CRI has no RPC for:
//   POST /images/import                 body: an image archive (tar), streamed
//        -> 200 {"images":[{"id","names"}],"warnings":[...]}
//   GET  /images/export?ref=R&ref=R2    -> 200 application/x-tar (OCI image layout)
//   POST /images/pull?ref=R             -> 200 application/x-ndjson, one event a line:
//        {"event":"layers","layers":[{"digest","size"}]}
//        {"event":"progress","layer":i,"received":bytes}   (at most every 200 ms a layer)
//        {"event":"layer","layer":i,"outcome":"streamed"|"from-store"|"present"}
//        {"event":"done","image":{"id","repoTags","size"}} or {"event":"error","error","code"}
//        (headers go before the pull starts, so its failure is the last event, not a status)
// Errors answer {"error": message, "code": kind} with a matching HTTP status.
// The `berth` CLI talks to it, so the stores are only ever opened by berthd.
// This is only the transport: the archive formats live in src/image/archive.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, errorMessage, unavailable, type ErrorKind } from '../errors';
import type { Logger } from '../log/logger';
import type { ImageService } from '../image/service';
import type { PullProgress } from '../image/pull';
import { clearStaleSocket } from '../daemon/lock';
import { lazy } from '../util/lazy';

// Image archives (tar reading and writing, docker save, zstd) are code for an operator's rare request: loaded then.
const archiveImport = lazy(() => import('../image/archive/import'));
const archiveExport = lazy(() => Promise.all([import('../image/archive/export'), import('../image/archive/tar_writer')]));

export interface AdminServerOptions {
  /** Normally <state>/admin.sock. */
  socketPath: string;
  images: ImageService;
  logger: Logger;
}

export interface AdminServer {
  readonly socketPath: string;
  /** Stops accepting, cuts open connections (an import in progress fails and records nothing) and removes the socket. */
  close(): Promise<void>;
}

const HTTP_STATUS: Record<ErrorKind, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 412,
  UNIMPLEMENTED: 501,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
  RESOURCE_EXHAUSTED: 507,
  PERMISSION_DENIED: 403,
  ABORTED: 409,
  INTERNAL: 500,
};

function sendJson(res: http.ServerResponse, status: number, body: unknown, close = false): void {
  const data = Buffer.from(JSON.stringify(body) + '\n');
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json', 'Content-Length': data.length };
  if (close) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(data);
}

function sendError(res: http.ServerResponse, err: unknown, close = false): void {
  const kind: ErrorKind = err instanceof BerthError ? err.kind : 'INTERNAL';
  sendJson(res, HTTP_STATUS[kind], { error: errorMessage(err), code: kind }, close);
}

async function handleImport(opts: AdminServerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  // Through a pipe we can detach: whatever the import leaves unread (tar's
  // record padding, or the rest of a refused archive) is then read and
  // dropped, so the client never writes into a closed socket and always
  // gets the answer.
  const body = new PassThrough();
  req.pipe(body);
  // pipe() does not pass on an aborted upload: fail the import rather than let it wait forever.
  req.once('close', () => {
    if (!req.complete && !body.destroyed) body.destroy(unavailable('the client went away before the archive was complete'));
  });
  const drain = () => {
    req.unpipe(body);
    body.destroy();
    req.resume();
  };
  try {
    const { importArchive } = await archiveImport();
    const result = await importArchive(opts.images, body, opts.logger);
    drain();
    sendJson(res, 200, result);
  } catch (err) {
    drain();
    opts.logger.warn('image import failed', { error: errorMessage(err) });
    sendError(res, err);
  }
}

const PROGRESS_INTERVAL_MS = 200;

async function handlePull(opts: AdminServerOptions, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  req.resume();
  const ref = url.searchParams.get('ref');
  if (!ref) {
    sendJson(res, 400, { error: 'pull needs ?ref=IMAGE', code: 'INVALID_ARGUMENT' });
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store' });
  const send = (event: Record<string, unknown>) => {
    if (!res.destroyed) res.write(JSON.stringify(event) + '\n');
  };
  const lastSent = new Map<number, number>();
  const pending = new Map<number, number>();
  const flush = (i: number) => {
    const n = pending.get(i);
    if (n === undefined) return;
    pending.delete(i);
    lastSent.set(i, Date.now());
    send({ event: 'progress', layer: i, received: n });
  };
  const progress: PullProgress = {
    layers: (layers) => send({ event: 'layers', layers }),
    received: (i, bytes) => {
      pending.set(i, bytes);
      // Bytes arrive in 16-64 KiB chunks: one line per layer per interval is plenty for a progress bar.
      if (Date.now() - (lastSent.get(i) ?? 0) >= PROGRESS_INTERVAL_MS) flush(i);
    },
    layerDone: (i, outcome) => {
      flush(i);
      send({ event: 'layer', layer: i, outcome });
    },
  };
  try {
    const img = await opts.images.pull(ref, undefined, undefined, progress);
    opts.logger.info('image pulled (admin)', { image: ref, id: img.id });
    send({ event: 'done', image: { id: img.id, repoTags: img.repoTags, size: img.size } });
  } catch (err) {
    opts.logger.warn('image pull failed (admin)', { image: ref, error: errorMessage(err) });
    send({ event: 'error', error: errorMessage(err), code: err instanceof BerthError ? err.kind : 'INTERNAL' });
  }
  res.end();
}

async function handleExport(opts: AdminServerOptions, url: URL, res: http.ServerResponse): Promise<void> {
  const [{ planExport }, { tarStream }] = await archiveExport();
  let plan;
  try {
    plan = await planExport(opts.images, url.searchParams.getAll('ref'));
  } catch (err) {
    sendError(res, err);
    return;
  }
  try {
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    await pipeline(Readable.from(tarStream(plan.items)), res);
    opts.logger.info('images exported', { images: plan.images });
  } catch (err) {
    // Headers are gone: cutting the connection is how the client learns the archive is incomplete.
    opts.logger.warn('image export failed', { error: errorMessage(err) });
    res.destroy();
  } finally {
    plan.release();
  }
}

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  await clearStaleSocket(opts.socketPath);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://berthd');
    const route = `${req.method ?? ''} ${url.pathname}`;
    let handled: Promise<void>;
    if (route === 'POST /images/import') handled = handleImport(opts, req, res);
    else if (route === 'GET /images/export') handled = handleExport(opts, url, res);
    else if (route === 'POST /images/pull') handled = handlePull(opts, url, req, res);
    else {
      const known = ['/images/import', '/images/export', '/images/pull'].includes(url.pathname);
      req.resume();
      sendJson(res, known ? 405 : 404, { error: `${route}: no such admin operation`, code: known ? 'UNIMPLEMENTED' : 'NOT_FOUND' });
      return;
    }
    handled.catch((err: unknown) => {
      opts.logger.error('admin request failed', { route, error: errorMessage(err) });
      if (!res.headersSent) sendError(res, err, true);
      else res.destroy();
    });
  });
  // Imports of big archives take as long as they take.
  server.requestTimeout = 0;
  // Created with umask 0177 so the socket is never, even briefly, open to others.
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(opts.socketPath, 0o600);
  opts.logger.info('admin endpoint serving', { socket: opts.socketPath });
  let closing: Promise<void> | undefined;
  return {
    socketPath: opts.socketPath,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => fs.rmSync(opts.socketPath, { force: true }));
      return closing;
    },
  };
}
