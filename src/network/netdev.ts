// Per-interface network counters of a network namespace, read from
// /proc/<pid>/net/dev of a process inside it (no setns needed). The process
// is checked to be in the namespace asked for, so a reused pid never reports
// another namespace's figures.
import * as fs from 'node:fs';

export interface InterfaceCounters {
  name: string;
  rxBytes: string;
  rxPackets: string;
  rxErrors: string;
  rxDropped: string;
  txBytes: string;
  txPackets: string;
  txErrors: string;
  txDropped: string;
}

/** Parses the text of /proc/net/dev; the loopback interface is left out. */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/);
    if (!name || name === 'lo' || f.length < 16 || f.some((x) => !/^\d+$/.test(x))) continue;
    out.push({
      name,
      rxBytes: f[0],
      rxPackets: f[1],
      rxErrors: f[2],
      rxDropped: f[3],
      txBytes: f[8],
      txPackets: f[9],
      txErrors: f[10],
      txDropped: f[11],
    });
  }
  return out;
}

/** "net:[4026532281]" → its inode, as a string. */
function nsInode(link: string): string | undefined {
  return /^net:\[(\d+)\]$/.exec(link)?.[1];
}

/**
 * The counters of the network namespace pinned at `nsPath`, read through the
 * first of `pids` that lives in it; undefined when none does.
 */
export function netnsCounters(nsPath: string, pids: number[]): InterfaceCounters[] | undefined {
  let ino: string;
  try {
    ino = fs.statSync(nsPath, { bigint: true }).ino.toString();
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    if (!(pid > 0)) continue;
    try {
      if (nsInode(fs.readlinkSync(`/proc/${pid}/ns/net`)) !== ino) continue;
      const text = fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8');
      // Read again after: the pid may have exited and been reused in between.
      if (nsInode(fs.readlinkSync(`/proc/${pid}/ns/net`)) !== ino) continue;
      return parseNetDev(text);
    } catch {
      // gone meanwhile: try the next
    }
  }
  return undefined;
}
