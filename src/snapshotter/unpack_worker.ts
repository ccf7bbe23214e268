// The unpack worker thread: runs unpackLayerStream (gunzip, the diffID's
// sha256, tar parsing and every file write) for any number of layers at once,
// off berthd's main thread. Its bytes come from the main thread in messages; it
// acknowledges each chunk once the unpack has taken it, which is what lets
// the main thread keep a fixed window in flight (see unpack_pool.ts).
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { BerthError, errnoCode, errorMessage } from '../errors';
import type { ToUnpackWorker, FromUnpackWorker } from './unpack_pool';
import { unpackLayerStream } from './unpacker';

const port = parentPort;
if (port === null) throw new Error('unpack_worker.ts runs only as a worker thread');
const post = (m: FromUnpackWorker): void => port.postMessage(m);

/** A layer being unpacked: its input stream and the chunks not yet handed to it. */
interface Job {
  id: number;
  input: Readable;
  queue: Buffer[];
  ended: boolean;
  /** The stream asked for more (read() called) and has not refused a push since. */
  wanting: boolean;
}

/** The layers being unpacked now, by job id: they run interleaved, each at the pace of its own input. */
const jobs = new Map<number, Job>();

/** Hands queued chunks to the unpack while it wants them, acknowledging each one. */
function feed(j: Job): void {
  while (j.wanting && j.queue.length > 0) {
    const chunk = j.queue.shift() as Buffer;
    post({ t: 'ack', id: j.id, bytes: chunk.length });
    j.wanting = j.input.push(chunk);
  }
  if (j.ended && j.queue.length === 0 && j.wanting) j.input.push(null);
}

function start(id: number, root: string, mediaType: string): void {
  const j: Job = {
    id,
    queue: [],
    ended: false,
    wanting: false,
    input: new Readable({
      read() {
        j.wanting = true;
        feed(j);
      },
    }),
  };
  jobs.set(id, j);
  unpackLayerStream(root, mediaType, j.input, { debug: (message, meta) => post({ t: 'log', message, meta }) }).then(
    (result) => {
      jobs.delete(id);
      post({ t: 'done', id, result });
    },
    (err: unknown) => {
      jobs.delete(id);
      post({ t: 'fail', id, kind: err instanceof BerthError ? err.kind : undefined, message: errorMessage(err), code: errnoCode(err) });
    },
  );
}

port.on('message', (m: ToUnpackWorker) => {
  if (m.t === 'start') {
    start(m.id, m.root, m.mediaType);
    return;
  }
  const j = jobs.get(m.id);
  if (j === undefined) return; // a message for a job that has already ended
  if (m.t === 'data') {
    j.queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
    feed(j);
  } else if (m.t === 'end') {
    j.ended = true;
    feed(j);
  } else {
    // The main thread's input failed: the unpack stops as it would on that error there (the code decides its kind).
    j.input.destroy(Object.assign(new Error(m.message), { code: m.code }));
  }
});
