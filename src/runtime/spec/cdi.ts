// Container Device Interface (CDI): devices named "vendor.com/class=name"
// in ContainerConfig.CDI_devices or in cdi.k8s.io/* annotations (a comma-
// separated list each) are looked up in the CDI spec files (JSON or YAML) of
// the configured directories, and their container edits (device nodes,
// mounts, environment, hooks, additional groups) are applied to the OCI
// spec, the spec-wide edits of each spec file once. Later directories win
// over earlier ones for the same device, as the CDI registry orders
// /etc/cdi before /var/run/cdi. A spec file that does not parse is skipped
// (and reported); a device nobody defines is refused, named.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as Yaml from 'yaml';
import { errorMessage, invalidArgument } from '../../errors';
import type { ContainerConfig__Output } from '../../gen/runtime/v1/ContainerConfig';
import { deviceAt } from './devices';
import type { OciHook, OciSpec } from './oci_types';
import { lazy } from '../../util/lazy';

export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
type HookName = (typeof HOOK_NAMES)[number];
/** vendor.com/class=name, as the CDI parser accepts it. */
const QUALIFIED = /^([a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9]?)\/([a-zA-Z0-9][a-zA-Z0-9_.-]*)=([a-zA-Z0-9][a-zA-Z0-9_.:-]*)$/;
/** The YAML parser (some 70 modules): loaded for the first YAML spec file, so a node without CDI never holds it. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on demand, on a synchronous path
const yaml = lazy(() => require('yaml') as typeof Yaml);
/** Spec files larger than this are not read (they are a few KiB). */
const MAX_SPEC_BYTES = 4 * 1024 * 1024;

interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: 'c' | 'b';
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

interface CdiMount {
  hostPath: string;
  containerPath: string;
  options?: string[];
  type?: string;
}

interface CdiHook {
  hookName: HookName;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
}

export interface CdiDevice {
  /** vendor.com/class=name */
  qualifiedName: string;
  /** The spec file it comes from (its spec-wide edits apply once per file). */
  file: string;
  edits: CdiEdits;
  specEdits: CdiEdits;
}

export type CdiWarn = (message: string) => void;

// ---- reading spec files ------------------------------------------------------

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strList = (v: unknown, what: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${what} must be a list of strings`);
  return v;
};
const num = (v: unknown, what: string): number | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${what} must be a non-negative integer`);
  return v;
};
const str = (v: unknown, what: string, required = false): string | undefined => {
  if ((v === undefined || v === null || v === '') && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new Error(`${what} must be a non-empty string`);
  return v;
};
const absolute = (v: unknown, what: string): string => {
  const p = str(v, what, true) as string;
  if (!path.isAbsolute(p)) throw new Error(`${what} "${p}" must be an absolute path`);
  return p;
};

function parseEdits(v: unknown, where: string): CdiEdits {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new Error(`${where} must be a mapping`);
  const list = (x: unknown, what: string): unknown[] => {
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x)) throw new Error(`${where}.${what} must be a list`);
    return x;
  };
  const deviceNodes = list(v.deviceNodes, 'deviceNodes').map((d, i): CdiDeviceNode => {
    const at = `${where}.deviceNodes[${i}]`;
    if (!isObj(d)) throw new Error(`${at} must be a mapping`);
    const type = str(d.type, `${at}.type`);
    if (type !== undefined && type !== 'c' && type !== 'b') throw new Error(`${at}.type must be "c" or "b"`);
    const permissions = str(d.permissions, `${at}.permissions`);
    if (permissions !== undefined && !/^[rwm]{1,3}$/.test(permissions)) throw new Error(`${at}.permissions must be letters of "rwm"`);
    return {
      path: absolute(d.path, `${at}.path`),
      hostPath: d.hostPath === undefined ? undefined : absolute(d.hostPath, `${at}.hostPath`),
      type,
      major: num(d.major, `${at}.major`),
      minor: num(d.minor, `${at}.minor`),
      fileMode: num(d.fileMode, `${at}.fileMode`),
      permissions,
      uid: num(d.uid, `${at}.uid`),
      gid: num(d.gid, `${at}.gid`),
    };
  });
  const mounts = list(v.mounts, 'mounts').map((m, i): CdiMount => {
    const at = `${where}.mounts[${i}]`;
    if (!isObj(m)) throw new Error(`${at} must be a mapping`);
    return {
      hostPath: absolute(m.hostPath, `${at}.hostPath`),
      containerPath: absolute(m.containerPath, `${at}.containerPath`),
      options: strList(m.options, `${at}.options`),
      type: str(m.type, `${at}.type`),
    };
  });
  const hooks = list(v.hooks, 'hooks').map((h, i): CdiHook => {
    const at = `${where}.hooks[${i}]`;
    if (!isObj(h)) throw new Error(`${at} must be a mapping`);
    const hookName = str(h.hookName, `${at}.hookName`, true) as string;
    if (!(HOOK_NAMES as readonly string[]).includes(hookName)) throw new Error(`${at}.hookName "${hookName}" is not an OCI hook`);
    return {
      hookName: hookName as HookName,
      path: absolute(h.path, `${at}.path`),
      args: strList(h.args, `${at}.args`),
      env: strList(h.env, `${at}.env`),
      timeout: num(h.timeout, `${at}.timeout`),
    };
  });
  const env = strList(v.env, `${where}.env`);
  for (const e of env ?? []) if (!/^[^=]+=/.test(e)) throw new Error(`${where}.env entry "${e}" is not KEY=value`);
  const gids = list(v.additionalGids ?? v.additionalGIDs, 'additionalGids').map((g, i) => num(g, `${where}.additionalGids[${i}]`) as number);
  return { env, deviceNodes, mounts, hooks, additionalGids: gids };
}

/** The devices one spec file defines; throws what is wrong with it. */
export function parseCdiSpec(text: string, file: string): CdiDevice[] {
  const doc: unknown = file.endsWith('.json') ? JSON.parse(text) : yaml().parse(text);
  if (!isObj(doc)) throw new Error('not a mapping');
  str(doc.cdiVersion, 'cdiVersion', true);
  const kind = str(doc.kind, 'kind', true) as string;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9.-]*\/[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(kind)) throw new Error(`kind "${kind}" is not vendor/class`);
  if (!Array.isArray(doc.devices) || doc.devices.length === 0) throw new Error('devices must be a non-empty list');
  const specEdits = parseEdits(doc.containerEdits, 'containerEdits');
  return doc.devices.map((d, i) => {
    if (!isObj(d)) throw new Error(`devices[${i}] must be a mapping`);
    const name = str(d.name, `devices[${i}].name`, true) as string;
    const qualifiedName = `${kind}=${name}`;
    if (!QUALIFIED.test(qualifiedName)) throw new Error(`device name "${name}" is not valid`);
    return { qualifiedName, file, edits: parseEdits(d.containerEdits, `devices[${i}].containerEdits`), specEdits };
  });
}

/** Every device of the spec files in `dirs` (*.json, *.yaml, *.yml; later dirs and later files win). */
export function loadCdiDevices(dirs: readonly string[], warn: CdiWarn = () => undefined): Map<string, CdiDevice> {
  const out = new Map<string, CdiDevice>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => /\.(json|ya?ml)$/.test(n)).sort();
    } catch {
      continue; // a directory that does not exist defines nothing
    }
    for (const n of names) {
      const file = path.join(dir, n);
      try {
        const st = fs.statSync(file);
        if (!st.isFile() || st.size > MAX_SPEC_BYTES) throw new Error('not a regular file of at most 4 MiB');
        for (const d of parseCdiSpec(fs.readFileSync(file, 'utf8'), file)) out.set(d.qualifiedName, d);
      } catch (err) {
        warn(`CDI spec ${file} skipped: ${errorMessage(err)}`);
      }
    }
  }
  return out;
}

// ---- the request ------------------------------------------------------------

/** The CDI devices a container asks for: CDI_devices, then cdi.k8s.io/ annotations; each once. */
export function requestedCdiDevices(config: Pick<ContainerConfig__Output, 'CDIDevices' | 'annotations'>): string[] {
  const names = config.CDIDevices.map((d) => d.name.trim());
  for (const [key, value] of Object.entries(config.annotations ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (!key.startsWith(CDI_ANNOTATION_PREFIX)) continue;
    names.push(...value.split(',').map((s) => s.trim()));
  }
  return [...new Set(names.filter((n) => n !== ''))];
}

/** The devices by name; INVALID_ARGUMENT naming each one that is malformed or nobody defines. */
export function resolveCdiDevices(names: readonly string[], known: ReadonlyMap<string, CdiDevice>): CdiDevice[] {
  const bad = names.filter((n) => !QUALIFIED.test(n));
  if (bad.length > 0) throw invalidArgument(`CDI device name(s) ${bad.map((n) => `"${n}"`).join(', ')} are not vendor.com/class=name`);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw invalidArgument(`unknown CDI device(s) ${unknown.map((n) => `"${n}"`).join(', ')}: no CDI spec file defines them`);
  }
  return names.map((n) => known.get(n) as CdiDevice);
}

// ---- applying edits -------------------------------------------------------------

function applyEdits(spec: OciSpec, e: CdiEdits): void {
  for (const kv of e.env ?? []) {
    const key = kv.slice(0, kv.indexOf('='));
    spec.process.env = [...(spec.process.env ?? []).filter((x) => !x.startsWith(`${key}=`)), kv];
  }
  for (const d of e.deviceNodes ?? []) {
    let { type, major, minor } = d;
    let fileMode = d.fileMode;
    if (type === undefined || major === undefined || minor === undefined) {
      const host = d.hostPath ?? d.path;
      let st: fs.BigIntStats;
      try {
        st = fs.statSync(host, { bigint: true });
      } catch (err) {
        throw invalidArgument(`CDI device node ${host}: ${errorMessage(err)}`, err);
      }
      const found = deviceAt(host, d.path, st);
      if (!found || found.type === 'u' || found.type === 'p') throw invalidArgument(`CDI device node ${host} is not a character or block device`);
      type ??= found.type;
      major ??= found.major;
      minor ??= found.minor;
      fileMode ??= found.fileMode;
    }
    spec.linux.devices = [
      ...(spec.linux.devices ?? []).filter((x) => x.path !== d.path),
      { path: d.path, type, major, minor, fileMode, uid: d.uid, gid: d.gid },
    ];
    const resources = (spec.linux.resources ??= {});
    resources.devices = [...(resources.devices ?? []), { allow: true, type, major, minor, access: d.permissions ?? 'rwm' }];
  }
  for (const m of e.mounts ?? []) {
    const type = m.type ?? 'bind';
    let options = m.options ?? [];
    if (type === 'bind' && !options.includes('bind') && !options.includes('rbind')) options = ['rbind', ...options];
    spec.mounts = [...spec.mounts.filter((x) => x.destination !== m.containerPath), { destination: m.containerPath, type, source: m.hostPath, options }];
  }
  for (const h of e.hooks ?? []) {
    const hook: OciHook = { path: h.path, args: h.args, env: h.env, timeout: h.timeout };
    const hooks = (spec.hooks ??= {});
    hooks[h.hookName] = [...(hooks[h.hookName] ?? []), hook];
  }
  if (e.additionalGids && e.additionalGids.length > 0) {
    const user = spec.process.user;
    user.additionalGids = [...new Set([...(user.additionalGids ?? []), ...e.additionalGids])];
  }
}

/** Applies the devices' edits to `spec`: each spec file's spec-wide edits once, then each device's own. */
export function applyCdiDevices(spec: OciSpec, devices: readonly CdiDevice[]): void {
  const files = new Set<string>();
  for (const d of devices) {
    if (!files.has(d.file)) {
      files.add(d.file);
      applyEdits(spec, d.specEdits);
    }
    applyEdits(spec, d.edits);
  }
}
