// Works around a leak in the bridge and ptp plugins (containernetworking
// plugins up to at least v1.1.1): DEL reads the pod's addresses from its
// interface, so when the netns or the interface is already gone it skips
// removing the ipMasq chain. berth
// knows the addresses from the cached ADD result and removes the chain the way
// the plugins name it (pkg/utils FormatChainName / FormatComment).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { PluginConf } from './cni_config';
import type { CniIpConfig } from './cni_result';

const MASQ_PLUGINS = new Set(['bridge', 'ptp']);

/** The plugins' per-attachment chain name: "CNI-" + the first 24 hex digits of sha512(network + containerId). */
export function masqChainName(network: string, containerId: string): string {
  return 'CNI-' + createHash('sha512').update(network + containerId).digest('hex').slice(0, 24);
}

function run(cmd: string, args: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err) => resolve(!err));
  });
}

/** Whether any plugin of the list set up ipMasq rules that a netns-less DEL leaves behind. */
export function hasMasqPlugin(plugins: readonly PluginConf[]): boolean {
  return plugins.some((p) => MASQ_PLUGINS.has(p.type) && p.ipMasq === true);
}

/** Removes the POSTROUTING jump and the chain for each address; absent rules are fine. */
export async function removeMasqRules(network: string, containerId: string, ips: readonly CniIpConfig[]): Promise<void> {
  const chain = masqChainName(network, containerId);
  const comment = `name: "${network}" id: "${containerId}"`;
  for (const version of [4, 6] as const) {
    const mine = ips.filter((ip) => ip.version === version);
    if (mine.length === 0) continue;
    const tool = version === 4 ? 'iptables' : 'ip6tables';
    for (const ip of mine) {
      const src = `${ip.ip}/${version === 4 ? 32 : 128}`;
      await run(tool, ['-w', '-t', 'nat', '-D', 'POSTROUTING', '-s', src, '-m', 'comment', '--comment', comment, '-j', chain]);
    }
    if (await run(tool, ['-w', '-t', 'nat', '-F', chain])) await run(tool, ['-w', '-t', 'nat', '-X', chain]);
  }
}
