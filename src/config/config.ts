// Loads, validates and renders berth's TOML configuration (see schema.ts).
import * as fs from 'node:fs';
import { dirname as pathDirname, join as pathJoin } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument, errorMessage, errnoCode } from '../errors';
import { SCHEMA, type Leaf, type LeafValue, type MapOf, type Node, type Section } from './schema';

export const DEFAULT_CONFIG_PATH = '/etc/berth/config.toml';

export interface RuntimeHandlerConfig {
  path: string;
  root: string;
}

export interface RlimitConfig {
  soft: number;
  hard: number;
}

export interface RegistryCredentialConfig {
  username: string;
  password: string;
  auth: string;
  identity_token: string;
  registry_token: string;
}

export interface BerthConfig {
  socket: string;
  root: string;
  state: string;
  shutdown_timeout_seconds: number;
  log: { level: 'error' | 'warn' | 'info' | 'debug'; format: 'text' | 'json' };
  metrics: { enabled: boolean; address: string; tls_cert_file: string; tls_key_file: string; event_loop_delay: boolean };
  runtime: {
    default_handler: string;
    cgroup_driver: 'cgroupfs' | 'systemd';
    restrict_oom_score_adj: boolean;
    handlers: Record<string, RuntimeHandlerConfig>;
    default_rlimits: Record<string, RlimitConfig>;
    enable_unprivileged_ports: boolean;
    enable_unprivileged_icmp: boolean;
  };
  image: {
    registry_config_dir: string;
    progress_timeout_seconds: number;
    max_concurrent_downloads: number;
    pinned_images: string[];
    credentials: Record<string, RegistryCredentialConfig>;
  };
  cni: { bin_dirs: string[]; conf_dir: string };
  cdi: { spec_dirs: string[] };
  streaming: { address: string; port: number; token_ttl_seconds: number; tls_cert_file: string; tls_key_file: string };
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function checkLeaf(key: string, leaf: Leaf, v: unknown): LeafValue {
  switch (leaf.type) {
    case 'string':
      if (typeof v !== 'string') throw invalidArgument(`config: key "${key}" must be a string, got ${describe(v)}`);
      if (leaf.values && !leaf.values.includes(v))
        throw invalidArgument(`config: key "${key}" must be one of ${leaf.values.join(', ')}, got "${v}"`);
      return v;
    case 'integer': {
      const n = typeof v === 'bigint' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n))
        throw invalidArgument(`config: key "${key}" must be an integer, got ${describe(v)}`);
      if ((leaf.min !== undefined && n < leaf.min) || (leaf.max !== undefined && n > leaf.max))
        throw invalidArgument(`config: key "${key}" must be between ${leaf.min} and ${leaf.max}, got ${n}`);
      return n;
    }
    case 'boolean':
      if (typeof v !== 'boolean') throw invalidArgument(`config: key "${key}" must be true or false, got ${describe(v)}`);
      return v;
    case 'string[]':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
        throw invalidArgument(`config: key "${key}" must be an array of strings, got ${describe(v)}`);
      return [...(v as string[])];
  }
}

function defaults(node: Node): unknown {
  switch (node.kind) {
    case 'leaf':
      return Array.isArray(node.default) ? [...node.default] : node.default;
    case 'map':
      return Object.fromEntries(Object.entries(node.default).map(([k, v]) => [k, { ...v }]));
    case 'section':
      return Object.fromEntries(Object.entries(node.fields).map(([k, f]) => [k, defaults(f)]));
  }
}

/** Merges `input` over `base` (a value of `node`'s shape), refusing unknown keys and wrong types. */
function merge(prefix: string, node: Section, base: Table, input: unknown): Table {
  if (!isTable(input)) throw invalidArgument(`config: "${prefix || '(top level)'}" must be a table, got ${describe(input)}`);
  const out: Table = { ...base };
  for (const [k, v] of Object.entries(input)) {
    const key = prefix ? `${prefix}.${k}` : k;
    const field = node.fields[k];
    if (!field) throw invalidArgument(`config: unknown key "${key}"`);
    if (field.kind === 'leaf') out[k] = checkLeaf(key, field, v);
    else if (field.kind === 'section') out[k] = merge(key, field, base[k] as Table, v);
    else out[k] = mergeMap(key, field, base[k] as Table, v);
  }
  return out;
}

function mergeMap(prefix: string, node: MapOf, base: Table, input: unknown): Table {
  if (!isTable(input)) throw invalidArgument(`config: "${prefix}" must be a table, got ${describe(input)}`);
  const out: Table = { ...base };
  for (const [name, entry] of Object.entries(input)) {
    const start = (base[name] as Table | undefined) ?? (defaults(node.entry) as Table);
    out[name] = merge(`${prefix}.${name}`, node.entry, start, entry);
  }
  return out;
}

/** The rlimits runc knows (setrlimit(2) resources). */
export const RLIMIT_NAMES: readonly string[] = [
  'RLIMIT_AS', 'RLIMIT_CORE', 'RLIMIT_CPU', 'RLIMIT_DATA', 'RLIMIT_FSIZE', 'RLIMIT_LOCKS', 'RLIMIT_MEMLOCK', 'RLIMIT_MSGQUEUE',
  'RLIMIT_NICE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_RSS', 'RLIMIT_RTPRIO', 'RLIMIT_RTTIME', 'RLIMIT_SIGPENDING', 'RLIMIT_STACK',
];

/** Checks that span keys (the schema checks each key alone); run after the file and after command-line overrides. */
export function checkConfig(config: BerthConfig): void {
  for (const [name, l] of Object.entries(config.runtime.default_rlimits)) {
    if (!RLIMIT_NAMES.includes(name)) throw invalidArgument(`config: runtime.default_rlimits.${name}: unknown rlimit; one of ${RLIMIT_NAMES.join(', ')}`);
    if (l.soft > l.hard) throw invalidArgument(`config: runtime.default_rlimits.${name}: soft limit ${l.soft} is above the hard limit ${l.hard}`);
  }
}

export function defaultConfig(): BerthConfig {
  return defaults(SCHEMA) as BerthConfig;
}

/** Parses TOML text into a validated config on top of the defaults. */
export function parseConfig(text: string, source = 'config'): BerthConfig {
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch (err) {
    throw invalidArgument(`${source}: not valid TOML: ${errorMessage(err)}`);
  }
  const config = merge('', SCHEMA, defaults(SCHEMA) as Table, parsed) as unknown as BerthConfig;
  checkConfig(config);
  return config;
}

/** The drop-in directory of a config file: config.d next to it (/etc/berth/config.d). */
export function dropInDir(configFile: string): string {
  return pathJoin(pathDirname(configFile), 'config.d');
}

/** The *.toml files of a drop-in directory, in name order (byte order, as ls -v would not). */
export function dropInFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw invalidArgument(`cannot read config drop-in directory ${dir}: ${errorMessage(err)}`);
  }
  return names
    .filter((n) => n.endsWith('.toml') && !n.startsWith('.'))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((n) => pathJoin(dir, n));
}

function parseFileOver(base: Table, file: string, text: string): Table {
  let parsed: unknown;
  try {
    parsed = parseToml(text);
  } catch (err) {
    throw invalidArgument(`${file}: not valid TOML: ${errorMessage(err)}`);
  }
  try {
    return merge('', SCHEMA, base, parsed);
  } catch (err) {
    throw invalidArgument(`${file}: ${errorMessage(err).replace(/^config: /, '')}`);
  }
}

/**
 * Reads the config file, then the drop-ins in config.d next to it, each
 * merged over what came before (tables key by key, arrays replaced). A
 * missing file at the default path is fine (built-in defaults); a missing
 * file the operator named explicitly is an error.
 */
export function loadConfig(path: string | undefined): BerthConfig {
  return loadConfigWithSources(path).config;
}

export function loadConfigWithSources(path: string | undefined): { config: BerthConfig; files: string[] } {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let table = defaults(SCHEMA) as Table;
  const files: string[] = [];
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (!(errnoCode(err) === 'ENOENT' && path === undefined)) throw invalidArgument(`cannot read config file ${file}: ${errorMessage(err)}`);
  }
  if (text !== undefined) {
    table = parseFileOver(table, file, text);
    files.push(file);
  }
  for (const f of dropInFiles(dropInDir(file))) {
    let t: string;
    try {
      t = fs.readFileSync(f, 'utf8');
    } catch (err) {
      throw invalidArgument(`cannot read config drop-in ${f}: ${errorMessage(err)}`);
    }
    table = parseFileOver(table, f, t);
    files.push(f);
  }
  const config = table as unknown as BerthConfig;
  try {
    checkConfig(config);
  } catch (err) {
    throw invalidArgument(`${files.join(' + ') || 'config'}: ${errorMessage(err).replace(/^config: /, '')}`);
  }
  return { config, files };
}

function lookup(path: string): { leaf: Leaf; parents: string[]; name: string } {
  const parts = path.split('.');
  let node: Node = SCHEMA;
  const parents: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (node.kind === 'section') {
      const next: Node | undefined = node.fields[p];
      if (!next) break;
      node = next;
    } else if (node.kind === 'map') {
      node = node.entry;
    } else break;
    if (i < parts.length - 1) parents.push(p);
    else if (node.kind === 'leaf') return { leaf: node, parents, name: p };
  }
  throw invalidArgument(`unknown config key "${path}"`);
}

/** Applies `key=value` overrides from the command line, typed by the schema. */
export function applyOverride(config: BerthConfig, key: string, raw: string): void {
  const { leaf, parents, name } = lookup(key);
  let value: unknown = raw;
  if (leaf.type === 'integer') value = /^-?\d+$/.test(raw) ? Number(raw) : raw;
  else if (leaf.type === 'boolean') value = raw === 'true' ? true : raw === 'false' ? false : raw;
  else if (leaf.type === 'string[]') value = raw === '' ? [] : raw.split(',');
  const checked = checkLeaf(key, leaf, value);
  let table = config as unknown as Table;
  for (const p of parents) {
    if (!isTable(table[p])) table[p] = {};
    table = table[p] as Table;
  }
  table[name] = checked;
}

function tomlValue(v: LeafValue): string {
  if (Array.isArray(v)) return `[${v.map((s) => JSON.stringify(s)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function tomlKey(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k);
}

/** The config with secrets blanked (verbose Status, `berthd config dump`, logs). */
export function redactedConfig(config: BerthConfig): BerthConfig {
  const copy = JSON.parse(JSON.stringify(config)) as BerthConfig;
  for (const cred of Object.values(copy.image.credentials)) {
    for (const k of ['password', 'auth', 'identity_token', 'registry_token'] as const) {
      if (cred[k]) cred[k] = '<redacted>';
    }
  }
  return copy;
}

/** A configuration as TOML; with `comments`, each key's doc above it (`berthd config default`). */
export function renderConfig(config: BerthConfig, comments: boolean, header: string): string {
  const lines: string[] = [header, ''];
  const doc = (text: string) => {
    if (comments && text) lines.push(`# ${text}`);
  };
  const emit = (prefix: string, node: Section, values: Table): void => {
    const leaves = Object.entries(node.fields).filter(([, f]) => f.kind === 'leaf');
    for (const [k, f] of leaves) {
      doc((f as Leaf).doc);
      lines.push(`${tomlKey(k)} = ${tomlValue(values[k] as LeafValue)}`);
    }
    for (const [k, f] of Object.entries(node.fields)) {
      if (f.kind === 'leaf') continue;
      const name = prefix ? `${prefix}.${tomlKey(k)}` : tomlKey(k);
      if (f.kind === 'section') {
        lines.push('');
        doc(f.doc);
        lines.push(`[${name}]`);
        emit(name, f, values[k] as Table);
      } else {
        lines.push('');
        doc(f.doc);
        const entries = Object.entries(values[k] as Table);
        if (entries.length === 0 && comments) {
          lines.push(`# [${name}."example"]`);
          for (const [ek, ef] of Object.entries(f.entry.fields)) lines.push(`# ${ek} = ${tomlValue((ef as Leaf).default)}  # ${(ef as Leaf).doc}`);
        }
        for (const [entryName, entry] of entries) {
          lines.push(`[${name}.${tomlKey(entryName)}]`);
          emit(`${name}.${tomlKey(entryName)}`, f.entry, entry as Table);
        }
      }
    }
  };
  emit('', SCHEMA, config as unknown as Table);
  return lines.join('\n') + '\n';
}

/** The complete default configuration as commented TOML (`berthd config default`). */
export function renderDefaultConfig(): string {
  return renderConfig(defaultConfig(), true, '# berth configuration. Every key is shown with its default value.');
}

/** A Markdown table of every key, for the README's config reference. */
export function renderConfigReference(): string {
  const rows: string[] = ['| key | type | default | meaning |', '|---|---|---|---|'];
  const walk = (prefix: string, node: Section): void => {
    for (const [k, f] of Object.entries(node.fields)) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (f.kind === 'leaf') rows.push(`| \`${key}\` | ${f.type} | \`${tomlValue(f.default)}\` | ${f.doc} |`);
      else if (f.kind === 'section') walk(key, f);
      else {
        rows.push(`| \`${key}.NAME\` | table | ${Object.keys(f.default).map((n) => `\`${n}\``).join(', ') || '(none)'} | ${f.doc} |`);
        walk(`${key}.NAME`, f.entry);
      }
    }
  };
  walk('', SCHEMA);
  return rows.join('\n') + '\n';
}
