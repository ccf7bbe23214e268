// A client for berthd's admin endpoint (src/admin/server.ts), used by the
// `berth` CLI and the tests.
import * as http from 'node:http';
import type { Readable } from 'node:stream';
import { BerthError, errnoCode, errorMessage, unavailable, type ErrorKind } from '../errors';
import type { ImportResult } from '../image/archive/import';

const KINDS = new Set<ErrorKind>([
  'INVALID_ARGUMENT', 'NOT_FOUND', 'ALREADY_EXISTS', 'FAILED_PRECONDITION', 'UNIMPLEMENTED', 'UNAVAILABLE',
  'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'PERMISSION_DENIED', 'ABORTED', 'INTERNAL',
]);

async function readBody(res: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The server's error answer as a typed error. */
async function errorOf(res: http.IncomingMessage): Promise<BerthError> {
  const text = await readBody(res);
  try {
    const doc = JSON.parse(text) as { error?: unknown; code?: unknown };
    const kind = typeof doc.code === 'string' && KINDS.has(doc.code as ErrorKind) ? (doc.code as ErrorKind) : 'INTERNAL';
    return new BerthError(kind, typeof doc.error === 'string' ? doc.error : text);
  } catch {
    return new BerthError('INTERNAL', `admin endpoint answered ${res.statusCode}: ${text.slice(0, 500)}`);
  }
}

export class AdminClient {
  constructor(readonly socketPath: string) {}

  private unreachable(err: unknown): BerthError {
    const code = errnoCode(err);
    const hint = code === 'ENOENT' || code === 'ECONNREFUSED' ? ' (is berthd running? pass --state or --admin-socket)' : '';
    return unavailable(`cannot talk to berthd's admin endpoint ${this.socketPath}: ${errorMessage(err)}${hint}`, err);
  }

  /** Sends an archive; resolves once berthd has imported it. */
  importArchive(archive: Readable): Promise<ImportResult> {
    return new Promise<ImportResult>((resolve, reject) => {
      let answered = false;
      const req = http.request({
        socketPath: this.socketPath,
        method: 'POST',
        path: '/images/import',
        headers: { 'Content-Type': 'application/x-tar', 'Transfer-Encoding': 'chunked' },
      });
      req.on('response', (res) => {
        answered = true;
        // An early answer (a refused archive) ends the upload, once read.
        const done = () => {
          archive.unpipe(req);
          archive.destroy();
          req.destroy();
        };
        if (res.statusCode === 200) {
          readBody(res)
            .then((t) => resolve(JSON.parse(t) as ImportResult), reject)
            .finally(done);
        } else {
          errorOf(res).then(reject, reject).finally(done);
        }
      });
      req.on('error', (err) => {
        if (!answered) reject(this.unreachable(err));
      });
      archive.on('error', (err) => {
        if (answered) return;
        answered = true;
        req.destroy();
        reject(err);
      });
      archive.pipe(req);
    });
  }

  /** The archive of `refs` as a stream; rejects if berthd refuses (unknown image...). */
  exportImages(refs: string[]): Promise<Readable> {
    const query = new URLSearchParams(refs.map((r): [string, string] => ['ref', r]));
    return new Promise<Readable>((resolve, reject) => {
      const req = http.request({ socketPath: this.socketPath, method: 'GET', path: `/images/export?${query.toString()}` });
      req.on('response', (res) => {
        if (res.statusCode === 200) resolve(res);
        else errorOf(res).then(reject, reject);
      });
      req.on('error', (err) => reject(this.unreachable(err)));
      req.end();
    });
  }
}
