// Runs one CNI plugin binary the way the CNI spec says: parameters in CNI_*
// environment variables, the network config on stdin, a result or an error
// object ({code, msg, details}) on stdout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BerthError } from '../errors';
import { launch } from '../util/launch';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

export interface PluginInvocation {
  binDirs: readonly string[];
  /** The plugin type, i.e. its binary name. */
  type: string;
  command: CniCommand;
  containerId: string;
  /** Empty when the namespace is gone (DEL must still run to release IPAM and iptables state). */
  netns: string;
  ifName: string;
  /** CNI_ARGS, already joined ("K=V;K=V"). */
  args: string;
  /** The plugin's config, written to its stdin as JSON. */
  stdinConfig: Record<string, unknown>;
  timeoutMs: number;
}

/** A plugin that ran and failed, or could not be run. Carries the CNI error code when the plugin gave one. */
export class CniPluginError extends BerthError {
  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly cniCode: number | undefined,
    message: string,
  ) {
    // Code 11 is the spec's "try again later".
    super(cniCode === 11 ? 'UNAVAILABLE' : 'INTERNAL', message);
    this.name = 'CniPluginError';
  }
}

const MAX_STDOUT = 1 << 20;
const MAX_STDERR = 64 << 10;

/** The plugin's binary in the first bin dir that has an executable of that name. */
export function findPlugin(binDirs: readonly string[], type: string): string | undefined {
  for (const dir of binDirs) {
    const candidate = path.join(dir, type);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

function describeFailure(stdout: string, stderr: string, exit: string): { code?: number; text: string } {
  try {
    const parsed = JSON.parse(stdout) as unknown;
    if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed) {
      const e = parsed as { code?: unknown; msg?: unknown; details?: unknown };
      const msg = typeof e.msg === 'string' ? e.msg : JSON.stringify(e.msg);
      const details = typeof e.details === 'string' && e.details !== '' ? `: ${e.details}` : '';
      const code = typeof e.code === 'number' ? e.code : undefined;
      return { code, text: `${msg}${details}${code !== undefined ? ` (CNI error code ${code})` : ''}` };
    }
  } catch {
    // not JSON: fall back to the raw output
  }
  const raw = (stdout.trim() || stderr.trim()).slice(0, 2000);
  return { text: raw ? `${raw} (${exit})` : exit };
}

/** Runs the plugin; resolves with its parsed stdout (undefined when empty), rejects with CniPluginError. */
export function invokePlugin(inv: PluginInvocation): Promise<unknown> {
  const what = `CNI plugin "${inv.type}" ${inv.command}`;
  const binary = findPlugin(inv.binDirs, inv.type);
  if (!binary) {
    return Promise.reject(
      new CniPluginError(inv.type, inv.command, undefined, `${what}: plugin binary not found in ${inv.binDirs.join(':')}`),
    );
  }
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CNI_')) env[k] = v;
  Object.assign(env, {
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: inv.netns,
    CNI_IFNAME: inv.ifName,
    CNI_ARGS: inv.args,
    CNI_PATH: inv.binDirs.join(':'),
  });
  // A plugin that exits without reading stdin is told by its exit status; one that hangs is SIGKILLed.
  return launch(binary, [], {
    env,
    input: JSON.stringify(inv.stdinConfig),
    timeoutMs: inv.timeoutMs,
    killSignal: 'SIGKILL',
    stdoutCap: MAX_STDOUT,
    stderrCap: MAX_STDERR,
  }).then(
    ({ code, signal, timedOut, stdout: out, stderr: err }) => {
      const stdout = out.toString('utf8');
      const stderr = err.toString('utf8');
      if (timedOut) throw new CniPluginError(inv.type, inv.command, undefined, `${what}: timed out after ${inv.timeoutMs} ms`);
      if (code !== 0) {
        const failure = describeFailure(stdout, stderr, signal ? `killed by ${signal}` : `exit status ${code}`);
        throw new CniPluginError(inv.type, inv.command, failure.code, `${what} failed: ${failure.text}`);
      }
      if (stdout.trim() === '') return undefined;
      try {
        return JSON.parse(stdout) as unknown;
      } catch {
        throw new CniPluginError(inv.type, inv.command, undefined, `${what}: output is not JSON: ${stdout.slice(0, 500)}`);
      }
    },
    (err: Error) => {
      throw new CniPluginError(inv.type, inv.command, undefined, `${what}: cannot run ${binary}: ${err.message}`);
    },
  );
}
