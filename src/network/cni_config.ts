// Finds, parses and validates the pod network's CNI configuration: the first
// .conflist/.conf/.json file by name in the conf dir. A single-plugin .conf is
// wrapped into a one-element list so the rest of the code sees one shape.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors';

/** CNI spec versions berth can drive (it converts all of their results to one form). */
export const SUPPORTED_CNI_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];

/** One plugin entry of a list: at least `type`; everything else is the plugin's business. */
export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  disableCheck: boolean;
  plugins: PluginConf[];
}

export interface LoadedNetworkConfig {
  /** Absolute path of the file it came from. */
  file: string;
  list: NetworkConfigList;
}

export type ConfigLookup =
  | { state: 'none'; message: string }
  | { state: 'invalid'; file: string; message: string }
  | { state: 'ok'; config: LoadedNetworkConfig };

const CONFIG_FILE = /\.(conflist|conf|json)$/;
// Spec 1.0.0: network names are alphanumeric plus _ . and -.
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
// A plugin type is a binary name looked up in the bin dirs, never a path.
const PLUGIN_TYPE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a parsed config file (a list, or a single plugin conf to wrap) into a list. */
export function parseNetworkConfig(raw: unknown): NetworkConfigList {
  if (!isObject(raw)) throw new Error('the file is not a JSON object');
  const { name, cniVersion } = raw;
  if (typeof name !== 'string' || !NETWORK_NAME.test(name))
    throw new Error(`"name" must be a network name of letters, digits, "_", "." and "-", got ${JSON.stringify(name)}`);
  if (typeof cniVersion !== 'string') throw new Error('"cniVersion" is missing');
  if (!SUPPORTED_CNI_VERSIONS.includes(cniVersion))
    throw new Error(`cniVersion ${cniVersion} is not supported (supported: ${SUPPORTED_CNI_VERSIONS.join(', ')})`);
  let plugins: unknown[];
  if ('plugins' in raw) {
    if (!Array.isArray(raw.plugins) || raw.plugins.length === 0) throw new Error('"plugins" must be a non-empty array');
    plugins = raw.plugins;
  } else {
    // A single plugin conf: the whole object is the plugin.
    plugins = [raw];
  }
  const checked = plugins.map((p, i): PluginConf => {
    if (!isObject(p)) throw new Error(`plugins[${i}] is not an object`);
    if (typeof p.type !== 'string' || !PLUGIN_TYPE.test(p.type))
      throw new Error(`plugins[${i}]: "type" must be a plugin binary name, got ${JSON.stringify(p.type)}`);
    if (p.capabilities !== undefined && !isObject(p.capabilities))
      throw new Error(`plugins[${i}] (${p.type}): "capabilities" must be an object`);
    return p as PluginConf;
  });
  const disableCheck = raw.disableCheck === true || raw.disableCheck === 'true';
  return { cniVersion, name, disableCheck, plugins: checked };
}

/** The config file berth would use: the first matching name in the directory. */
export function firstConfigFile(confDir: string): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(confDir);
  } catch {
    return undefined;
  }
  const first = names.filter((f) => CONFIG_FILE.test(f)).sort()[0];
  return first === undefined ? undefined : path.join(confDir, first);
}

/**
 * Loads the network config. Results are memoised by the file's identity
 * (name, mtime, size, inode), so calling this on every request is cheap and
 * still notices edits, new files and removals at once.
 */
export class NetworkConfigLoader {
  private memo?: { key: string; lookup: ConfigLookup };

  constructor(readonly confDir: string) {}

  lookup(): ConfigLookup {
    const file = firstConfigFile(this.confDir);
    if (!file) return { state: 'none', message: `no CNI network config found in ${this.confDir}` };
    let key: string;
    try {
      const st = fs.statSync(file);
      key = `${file}\0${st.mtimeMs}\0${st.size}\0${st.ino}`;
    } catch (err) {
      return { state: 'invalid', file, message: `cannot read CNI config ${file}: ${errorMessage(err)}` };
    }
    if (this.memo?.key === key) return this.memo.lookup;
    const lookup = this.load(file);
    this.memo = { key, lookup };
    return lookup;
  }

  private load(file: string): ConfigLookup {
    try {
      const list = parseNetworkConfig(JSON.parse(fs.readFileSync(file, 'utf8')) as unknown);
      return { state: 'ok', config: { file, list } };
    } catch (err) {
      return { state: 'invalid', file, message: `invalid CNI config ${file}: ${errorMessage(err)}` };
    }
  }
}
