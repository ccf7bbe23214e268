// Runtime handlers: named OCI runtime binaries from the config. Each is probed
// at start so a missing or broken binary shows in Status, not at the first pod.
import { RUNC_SYSTEMD_ARGS } from '../cgroups/systemd/units';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BerthConfig } from '../config/config';
import { errorMessage, failedPrecondition, notFound } from '../errors';
import { probeContainerCreate, probeUsernsSupport, type UsernsSupport } from './handler_probe';

export interface RuntimeHandler {
  name: string;
  /** Absolute path of the binary, when it was found. */
  binary: string;
  /** Directory passed as the runtime's --root. */
  root: string;
  /**
   * Where runtime calls keep their scratch files (log, process.json, console
   * socket): `<state>/tmp`, berth's own, emptied at every start so a killed
   * berthd leaves nothing behind (in /tmp nobody would remove them).
   */
  tmpDir: string;
  /**
   * Whether the handler is usable: `binary --version` ran and a probe
   * container could be created and deleted. When false, `problem` says why.
   */
  ok: boolean;
  problem: string;
  version: string;
  /** Global flags of every call (runc --systemd-cgroup under the systemd cgroup driver). */
  globalArgs?: string[];
  /** From `binary features` (runtime-spec features.json); absent when the runtime has no such command. */
  features?: RuntimeFeatures;
  /** Probed at start (only for a handler that is ok); absent: not probed. */
  userNamespaces?: UsernsSupport;
}

/** The parts of `runc features` output berth uses. */
export interface RuntimeFeatures {
  ociVersionMax: string;
  mountOptions: string[];
  namespaces: string[];
  /** linux.mountExtensions.idmap.enabled: the runtime idmaps bind mounts itself (runc ≥ 1.2). */
  idmapMounts: boolean;
}

/** Whether the handler can do recursive read-only ("rro") mounts. */
export function supportsRecursiveReadOnly(handler: Pick<RuntimeHandler, 'features'>): boolean {
  return handler.features?.mountOptions.includes('rro') ?? false;
}

/** Parses `features` output; undefined when it is not the expected JSON. */
export function parseFeatures(text: string): RuntimeFeatures | undefined {
  try {
    const raw = JSON.parse(text) as {
      ociVersionMax?: unknown;
      mountOptions?: unknown;
      linux?: { namespaces?: unknown; mountExtensions?: { idmap?: { enabled?: unknown } } };
    };
    const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return {
      ociVersionMax: typeof raw.ociVersionMax === 'string' ? raw.ociVersionMax : '',
      mountOptions: strings(raw.mountOptions),
      namespaces: strings(raw.linux?.namespaces),
      idmapMounts: raw.linux?.mountExtensions?.idmap?.enabled === true,
    };
  } catch {
    return undefined;
  }
}

/** Looks a command up in PATH (as execvp would), returning an absolute path. */
/** A native helper (berth-pinns, berth-notify): $ENV_VAR, the repository's (or install's) build/, the libexec dirs, then PATH. */
export function findHelper(name: string, envVar: string): string | undefined {
  const candidates = [
    process.env[envVar],
    // dist/src/runtime -> <repo or /usr/lib/berth>/build
    path.resolve(__dirname, '..', '..', '..', 'build', name),
    path.resolve(__dirname, '..', '..', 'build', name),
    `/usr/local/libexec/berth/${name}`,
    `/usr/libexec/berth/${name}`,
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  return resolveBinary(name);
}

export function resolveBinary(name: string): string | undefined {
  if (name.includes('/')) return fs.existsSync(name) ? path.resolve(name) : undefined;
  const dirs = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  for (const dir of dirs) {
    const candidate = path.join(dir || '.', name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** `binary features`; undefined for runtimes without the command (it is optional). */
function runFeatures(binary: string): Promise<RuntimeFeatures | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['features'], { timeout: 5000, maxBuffer: 1024 * 1024 }, (err, stdout) => {
      resolve(err ? undefined : parseFeatures(stdout));
    });
  });
}

function runVersion(binary: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['--version'], { timeout: 5000 }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.split('\n')[0].trim());
    });
  });
}

export class RuntimeHandlerRegistry {
  private readonly handlers = new Map<string, RuntimeHandler>();
  readonly defaultName: string;
  /** See RuntimeHandler.tmpDir. */
  readonly tmpDir: string;
  /** runtime.cgroup_driver is "systemd": runc makes container scopes over D-Bus. */
  private readonly systemdCgroup: boolean;
  private readonly globalArgs: string[];

  constructor(private readonly config: BerthConfig) {
    this.defaultName = config.runtime.default_handler;
    this.tmpDir = path.join(config.state, 'tmp');
    this.systemdCgroup = config.runtime.cgroup_driver === 'systemd';
    this.globalArgs = this.systemdCgroup ? [...RUNC_SYSTEMD_ARGS] : [];
  }

  /** Empties the scratch directory: what is there belongs to calls of a berthd that is gone. */
  async resetTmpDir(): Promise<void> {
    await fs.promises.rm(this.tmpDir, { recursive: true, force: true });
    await fs.promises.mkdir(this.tmpDir, { mode: 0o700 });
  }

  /**
   * Probes every configured handler, all at once so start-up waits for the
   * slowest one only. Never throws: problems are recorded.
   */
  async probe(): Promise<void> {
    const entries = Object.entries(this.config.runtime.handlers);
    await Promise.all(
      entries.map(async ([name, h]) => {
        const root = h.root || path.join(this.config.state, 'runtime', name);
        const binary = resolveBinary(h.path);
        const handler: RuntimeHandler = {
          name, binary: binary ?? h.path, root, tmpDir: this.tmpDir, globalArgs: this.globalArgs, ok: false, problem: '', version: '',
        };
        if (!binary) {
          handler.problem = `runtime handler "${name}": binary "${h.path}" not found`;
        } else {
          try {
            handler.version = await runVersion(binary);
          } catch (err) {
            handler.problem = `runtime handler "${name}": "${binary} --version" failed: ${errorMessage(err)}`;
          }
          if (!handler.problem) {
            const [features, created] = await Promise.all([
              runFeatures(binary),
              probeContainerCreate(binary, { workDir: path.join(this.config.state, 'probe'), systemdCgroup: this.systemdCgroup }),
            ]);
            handler.features = features;
            if (created.ok) {
              handler.ok = true;
              handler.userNamespaces = await probeUsernsSupport(binary, {
                workDir: path.join(this.config.state, 'probe-userns'),
                systemdCgroup: this.systemdCgroup,
                ownedDir: this.config.state,
              });
            } else handler.problem = `runtime handler "${name}": cannot ${created.stage} a container on this host: ${created.message}`;
          }
        }
        this.handlers.set(name, handler);
      }),
    );
  }

  list(): RuntimeHandler[] {
    // By code point, not localeCompare: ICU's collator would map ~2 MiB of its data into berthd for this one sort.
    return [...this.handlers.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The handler for a pod; "" means the default. Throws a user-facing error when unusable. */
  get(name: string): RuntimeHandler {
    const wanted = name || this.defaultName;
    const handler = this.handlers.get(wanted);
    if (!handler) {
      throw notFound(
        `runtime handler "${wanted}" is not configured; configured handlers: ${[...this.handlers.keys()].join(', ')}`,
      );
    }
    if (!handler.ok) throw failedPrecondition(handler.problem);
    return handler;
  }

  /** Whether get(name) would succeed. */
  usable(name: string): boolean {
    return this.handlers.get(name || this.defaultName)?.ok ?? false;
  }

  defaultHandler(): RuntimeHandler | undefined {
    return this.handlers.get(this.defaultName);
  }
}
