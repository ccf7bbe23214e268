// The durable record of a pod's attachment to a network: the exact config
// list and runtime arguments used for ADD, and its result. DEL and CHECK use
// this record rather than the conf dir, which may have changed since; it is
// written before ADD starts so a crash half-way still leaves enough to DEL.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors';
import type { NetworkConfigList } from './cni_config';
import { writeFileAtomic } from '../util/atomic_file';

export interface CapabilityArgs {
  portMappings?: Array<{ hostPort: number; containerPort: number; protocol: string; hostIP?: string }>;
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  ipRanges?: Array<Array<{ subnet: string }>>;
  dns?: { servers: string[]; searches: string[]; options: string[] };
}

export interface AttachmentRecord {
  kind: 'berthCniAttachmentV1';
  network: string;
  podId: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  ifName: string;
  netnsPath: string;
  cniArgs: string;
  list: NetworkConfigList;
  capabilityArgs: CapabilityArgs;
  /** The final ADD result as the plugins gave it (list's cniVersion); null while ADD is in progress. */
  result: unknown;
}

export class AttachmentCache {
  constructor(readonly dir: string) {}

  private file(network: string, podId: string): string {
    return path.join(this.dir, `${network}-${podId}`);
  }

  /**
   * Writes the record atomically (temp file, fsync, rename, fsync dir); the
   * directory is made when missing. `replacing`: the record saved before ADD
   * is being given its result, and the directory is not fsynced: a power loss
   * may keep the earlier record, which is enough to DEL (without prevResult)
   * after the reboot that took the netns, veths and iptables rules with it.
   */
  async save(rec: AttachmentRecord, { replacing = false }: { replacing?: boolean } = {}): Promise<void> {
    const write = (): Promise<void> => writeFileAtomic(this.file(rec.network, rec.podId), JSON.stringify(rec), { syncDir: !replacing });
    try {
      await write();
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await fs.promises.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await write();
    }
  }


  async remove(network: string, podId: string): Promise<void> {
    await fs.promises.rm(this.file(network, podId), { force: true });
  }

  /** The pod ids that have a record (attached, or left half-attached by a crash). */
  async podIds(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
    // "<network>-<podId>": pod ids never contain "-", network names may.
    const ids = names.filter((n) => !n.includes('.tmp-')).map((n) => n.slice(n.lastIndexOf('-') + 1));
    return [...new Set(ids)].filter((id) => id !== '');
  }

  /** Every record for the pod (one per network it was attached to). Unreadable records are reported, not skipped silently. */
  async forPod(podId: string): Promise<{ records: AttachmentRecord[]; broken: string[] }> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { records: [], broken: [] };
      throw err;
    }
    const records: AttachmentRecord[] = [];
    const broken: string[] = [];
    for (const name of names.filter((n) => n.endsWith(`-${podId}`))) {
      const file = path.join(this.dir, name);
      try {
        const rec = JSON.parse(await fs.promises.readFile(file, 'utf8')) as AttachmentRecord;
        if (rec.kind !== 'berthCniAttachmentV1' || rec.podId !== podId) throw new Error('not an attachment record');
        records.push(rec);
      } catch {
        broken.push(file);
      }
    }
    return { records, broken };
  }
}
