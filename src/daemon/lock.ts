// One berthd per socket and per state directory. Node has no flock, so the
// lock is a pid file created exclusively; a file whose pid is no longer a
// live berthd is stale (left by a crash) and is taken over.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { errnoCode, failedPrecondition } from '../errors';

function isLiveBerthd(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /berthd|daemon\/main/.test(cmdline);
  } catch {
    return false;
  }
}

/** Takes the pid-file lock or throws naming the running berthd. */
export function acquirePidLock(file: string, what: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    if (isLiveBerthd(pid)) {
      throw failedPrecondition(`another berthd (pid ${pid}) is already using ${what}; stop it first (lock file ${file})`);
    }
    fs.rmSync(file, { force: true });
  }
  throw failedPrecondition(`could not take the lock ${file}`);
}

/** Resolves true when something accepts connections on the unix socket. */
export function socketInUse(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Removes a socket left behind by a crash; refuses when one is live. */
export async function clearStaleSocket(socketPath: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw failedPrecondition(`${socketPath} exists and is not a socket; remove it or choose another --socket`);
  }
  if (await socketInUse(socketPath)) {
    throw failedPrecondition(`another process is already serving on ${socketPath}; is berthd already running?`);
  }
  fs.unlinkSync(socketPath);
}
