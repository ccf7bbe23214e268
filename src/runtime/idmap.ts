// User namespaces and idmapped mounts through the berth-pinns helper
// (src/pinns/pinns.c `idmap` and `umount`): runc 1.1 cannot idmap a mount
// itself, so berth attaches idmapped copies of the rootfs layers and of each
// bind-mount source before `runc create`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage, failedPrecondition, internal } from '../errors';
import { findHelper } from './handlers';
import type { OciIdMapping } from './spec/oci_types';
import { launch } from '../util/launch';

/** One range of a uid or gid map, as the CRI gives it. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  length: number;
}

/** The id maps of a user namespace (one range each: what the CRI allows). */
export interface UserNamespaceMaps {
  uids: IdMapping[];
  gids: IdMapping[];
}

/** The helper's CONTAINER:HOST:LENGTH argument. */
export function mapArg(maps: readonly IdMapping[]): string {
  const m = maps[0];
  if (!m || maps.length !== 1) throw internal(`expected one id mapping, got ${maps.length}`);
  return `${m.containerId}:${m.hostId}:${m.length}`;
}

export function toOciMappings(maps: readonly IdMapping[]): OciIdMapping[] {
  return maps.map((m) => ({ containerID: m.containerId, hostID: m.hostId, size: m.length }));
}

/** The host id that `containerId` maps to, or undefined when it is not mapped. */
export function hostIdOf(maps: readonly IdMapping[], containerId: number): number | undefined {
  for (const m of maps) if (containerId >= m.containerId && containerId < m.containerId + m.length) return m.hostId + containerId - m.containerId;
  return undefined;
}

export function sameMaps(a: UserNamespaceMaps, b: UserNamespaceMaps): boolean {
  const eq = (x: readonly IdMapping[], y: readonly IdMapping[]): boolean =>
    x.length === y.length && x.every((m, i) => m.containerId === y[i].containerId && m.hostId === y[i].hostId && m.length === y[i].length);
  return eq(a.uids, b.uids) && eq(a.gids, b.gids);
}

/** Where berth-pinns is looked for: $BERTH_PINNS, the repo's build/, the install dir, then PATH. */
export function findPinns(): string | undefined {
  return findHelper('berth-pinns', 'BERTH_PINNS');
}

/** Runs berth-pinns; its stderr (without the program name) is the error. */
export function runPinns(binary: string | undefined, args: string[]): Promise<string> {
  if (!binary) {
    return Promise.reject(
      failedPrecondition(
        'the berth-pinns helper was not found (build it with `make`, install it in /usr/local/libexec/berth, or set BERTH_PINNS)',
      ),
    );
  }
  return launch(binary, args, { timeoutMs: 30_000, stdoutCap: 1 << 20 }).then(
    (r) => {
      if (r.code === 0 && !r.timedOut) return r.stdout.toString('utf8');
      const why = r.stderr.toString('utf8').trim() || `Command failed: ${[binary, ...args].join(' ')}`;
      throw internal(why.replace(/^berth-pinns: /, ''));
    },
    (err: unknown) => {
      throw internal(errorMessage(err));
    },
  );
}

/** Whose ids an idmapped mount shows: a pinned user namespace, or a throw-away one with these maps. */
export type IdmapSource = { userns: string } | { maps: UserNamespaceMaps };

export class IdmapHelper {
  constructor(private readonly binary: string | undefined = findPinns()) {}

  /** Attaches an idmapped copy of the mount at `src` at `dst` (created like src: directory or file). */
  async idmap(src: string, dst: string, by: IdmapSource, recursive = false): Promise<void> {
    const args = ['idmap'];
    if ('userns' in by) args.push('--userns', by.userns);
    else args.push('--uid-map', mapArg(by.maps.uids), '--gid-map', mapArg(by.maps.gids));
    if (recursive) args.push('--recursive');
    await runPinns(this.binary, [...args, src, dst]);
  }

  /** Lazily unmounts each path; paths not mounted (or missing) are fine. */
  async umount(paths: readonly string[]): Promise<void> {
    if (paths.length > 0) await runPinns(this.binary, ['umount', ...paths]);
  }
}

/**
 * In a user namespace runc bind-mounts and pivots as the pod's root, which
 * the host's root-owned directories do not know: every directory from `/` to
 * `dir` must let others search it. Those from `owned` (berth's own) down get
 * o+x; one above that lacks it is an error naming it.
 */
export async function ensureTraversable(dir: string, owned: string): Promise<void> {
  const target = path.resolve(dir);
  const base = path.resolve(owned);
  const parts = target.split('/').filter((p) => p !== '');
  let cur = '/';
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) cur = path.join(cur, parts[i - 1]);
    const st = await fs.promises.stat(cur);
    if ((st.mode & 0o001) !== 0) continue;
    if (cur === base || cur.startsWith(base + '/')) await fs.promises.chmod(cur, (st.mode & 0o7777) | 0o011);
    else throw failedPrecondition(`${cur} is not searchable by others (mode ${(st.mode & 0o777).toString(8)}): containers in user namespaces cannot reach ${target}`);
  }
}
