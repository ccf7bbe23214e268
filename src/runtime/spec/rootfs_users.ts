// Users and groups of a container, resolved from the container's OWN rootfs
// (/etc/passwd, /etc/group). The rootfs is untrusted image content: every path
// is resolved inside it, symlinks included, so a link such as
// /etc/passwd -> /../../host/etc/shadow can never read a host file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode, errorMessage, invalidArgument } from '../../errors';
import type { OciUser } from './oci_types';

const MAX_SYMLINKS = 40;
/** /etc/passwd and /etc/group larger than this are refused, not read into memory. */
const MAX_DB_BYTES = 8 * 1024 * 1024;
const MAX_ID = 0xfffffffe;

/**
 * The host path of `unsafePath` inside `rootfs`, resolving every symlink as if
 * `rootfs` were "/" (absolute targets restart at rootfs, ".." stops at it).
 * Components that do not exist are appended as they are.
 */
export function resolveInRootfs(rootfs: string, unsafePath: string): string {
  const root = path.resolve(rootfs);
  const done: string[] = [];
  const pending = unsafePath.split('/');
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(root, ...done, part);
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(candidate);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
        done.push(part);
        continue;
      }
      throw err;
    }
    if (!stat.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw invalidArgument(`too many symlinks resolving "${unsafePath}" in the container rootfs`);
    const target = fs.readlinkSync(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/'));
  }
  return path.join(root, ...done);
}

/**
 * Reads a regular file inside the rootfs; undefined when it does not exist.
 * O_NOFOLLOW closes the race where the last component becomes a symlink after
 * resolution; O_NONBLOCK keeps a FIFO planted by an image from hanging us.
 */
export function readRootfsFile(rootfs: string, unsafePath: string, maxBytes = MAX_DB_BYTES): string | undefined {
  const hostPath = resolveInRootfs(rootfs, unsafePath);
  let fd: number;
  try {
    fd = fs.openSync(hostPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw invalidArgument(`cannot open ${unsafePath} in the container rootfs: ${errorMessage(err)}`, err);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw invalidArgument(`${unsafePath} in the container rootfs is not a regular file`);
    if (stat.size > maxBytes) throw invalidArgument(`${unsafePath} in the container rootfs is larger than ${maxBytes} bytes`);
    const buf = Buffer.alloc(stat.size);
    let off = 0;
    while (off < buf.length) {
      const n = fs.readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseId(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

/** Parses passwd(5); malformed lines are skipped, as libc does. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

/** Parses group(5); malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    const members = (f[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    out.push({ name: f[0], gid, members });
  }
  return out;
}

export interface UserRequest {
  /** CRI run_as_username. */
  username?: string;
  /** CRI run_as_user (decimal string, as the generated types carry int64). */
  uid?: string;
  /** CRI run_as_group. */
  gid?: string;
  /** The image config's User: "name", "uid", "uid:gid", "name:group", ... */
  imageUser?: string;
  /** CRI supplemental_groups. */
  supplementalGroups?: readonly string[];
  /** "Strict" keeps only supplementalGroups; "Merge" (default) adds the user's /etc/group memberships. */
  policy?: 'Merge' | 'Strict';
}

function toId(value: string, what: string): number {
  const n = parseId(value.trim());
  if (n === undefined) throw invalidArgument(`${what} "${value}" is not a valid id (0..${MAX_ID})`);
  return n;
}

/**
 * The process user for a container, as containerd resolves it: CRI username or
 * uid (plus run_as_group) wins over the image's User; names are looked up in
 * the rootfs; the primary gid and the groups listing the user are added.
 */
export function resolveUser(rootfs: string, req: UserRequest): OciUser {
  let userStr = '';
  if (req.username) userStr = req.username;
  else if (req.uid !== undefined) userStr = String(toId(req.uid, 'run_as_user'));
  if (req.gid !== undefined) {
    if (userStr === '') throw invalidArgument('run_as_group is set without run_as_user or run_as_username');
    userStr = `${userStr}:${toId(req.gid, 'run_as_group')}`;
  }
  if (userStr === '') userStr = (req.imageUser ?? '').trim();
  if (userStr === '') userStr = '0';

  const sep = userStr.indexOf(':');
  const userPart = sep < 0 ? userStr : userStr.slice(0, sep);
  const groupPart = sep < 0 ? undefined : userStr.slice(sep + 1);
  if (userPart === '') throw invalidArgument(`user "${userStr}" has an empty user name`);

  // Read the databases lazily: a plain numeric "uid:gid" needs neither.
  let passwd: PasswdEntry[] | undefined;
  const passwdDb = (): PasswdEntry[] => (passwd ??= parsePasswd(readRootfsFile(rootfs, '/etc/passwd') ?? ''));
  let groups: GroupEntry[] | undefined;
  const groupDb = (): GroupEntry[] => (groups ??= parseGroup(readRootfsFile(rootfs, '/etc/group') ?? ''));

  let uid: number;
  let gid = 0;
  let entry: PasswdEntry | undefined;
  const numericUid = parseId(userPart);
  if (numericUid !== undefined) {
    uid = numericUid;
    entry = passwdDb().find((e) => e.uid === uid);
    if (entry) gid = entry.gid;
  } else {
    entry = passwdDb().find((e) => e.name === userPart);
    if (!entry) throw invalidArgument(`user "${userPart}" not found in the container image's /etc/passwd`);
    uid = entry.uid;
    gid = entry.gid;
  }
  if (groupPart !== undefined) {
    if (groupPart === '') throw invalidArgument(`user "${userStr}" has an empty group`);
    const numericGid = parseId(groupPart);
    if (numericGid !== undefined) gid = numericGid;
    else {
      const g = groupDb().find((e) => e.name === groupPart);
      if (!g) throw invalidArgument(`group "${groupPart}" not found in the container image's /etc/group`);
      gid = g.gid;
    }
  }

  const extra = new Set<number>();
  if ((req.policy ?? 'Merge') === 'Merge') {
    extra.add(gid);
    if (entry) {
      const name = entry.name;
      for (const g of groupDb()) if (g.members.includes(name)) extra.add(g.gid);
    }
  }
  for (const g of req.supplementalGroups ?? []) extra.add(toId(g, 'supplemental group'));
  const additionalGids = [...extra].sort((a, b) => a - b);
  return additionalGids.length > 0 ? { uid, gid, additionalGids } : { uid, gid };
}
