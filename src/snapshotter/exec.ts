// Running the small system binaries the snapshotter relies on (mount, umount,
// mknod, setfattr, zstd): Node has no mount, mknod or xattr API.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const found = new Map<string, string | undefined>();

/** Absolute path of a binary in the usual system directories (cached), or undefined. */
export function findExecutable(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), ...SEARCH_PATH];
  let result: string | undefined;
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      result = candidate;
      break;
    } catch {
      // next
    }
  }
  found.set(name, result);
  return result;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs a binary (no shell) and resolves with stdout; rejects with CommandError carrying stderr. */
export function run(file: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: opts.cwd, maxBuffer: 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
        const why = stderr.trim() || err.message;
        reject(new CommandError(`${path.basename(file)} ${args.join(' ')}: ${why}`, stderr, code));
        return;
      }
      resolve(stdout);
    });
  });
}
