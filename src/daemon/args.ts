// berthd's command line. Flags override the config file.
import { applyOverride, checkConfig, loadConfigWithSources, type BerthConfig } from '../config/config';
import { invalidArgument } from '../errors';

export const USAGE = `usage: berthd [flags]              run the CRI daemon
       berthd config dump [flags]  print the effective config (file, config.d/*.toml, flags; secrets redacted)
       berthd config default       print the complete default config
       berthd config reference     print the config reference (Markdown)

flags:
  --config PATH           config file (default /etc/berth/config.toml; missing is fine),
                          then the drop-ins config.d/*.toml next to it, in name order
  --socket PATH           CRI socket (socket)
  --root DIR              persistent state (root)
  --state DIR             volatile state (state)
  --log-level LEVEL       error|warn|info|debug (log.level)
  --log-format FORMAT     text|json (log.format)
  --metrics-address ADDR  host:port for /metrics (metrics.address)
  --no-metrics            do not serve metrics (metrics.enabled=false)
  --set KEY=VALUE         any config key, e.g. --set runtime.default_handler=crun
  --version               print the version
  --help                  this text
`;

const FLAG_KEYS: Record<string, string> = {
  '--socket': 'socket',
  '--root': 'root',
  '--state': 'state',
  '--log-level': 'log.level',
  '--log-format': 'log.format',
  '--metrics-address': 'metrics.address',
};

export type Command =
  | { kind: 'run'; config: BerthConfig; configPath: string | undefined; overrides: Array<[string, string]>; files: string[] }
  | { kind: 'dump'; config: BerthConfig }
  | { kind: 'print-default-config' }
  | { kind: 'print-config-reference' }
  | { kind: 'help' }
  | { kind: 'version' };

export function parseArgs(argv: string[]): Command {
  if (argv[0] === 'config') {
    if (argv[1] === 'default' && argv.length === 2) return { kind: 'print-default-config' };
    if (argv[1] === 'reference' && argv.length === 2) return { kind: 'print-config-reference' };
    if (argv[1] === 'dump') {
      const cmd = parseRunFlags(argv.slice(2));
      return cmd.kind === 'run' ? { kind: 'dump', config: cmd.config } : cmd;
    }
    throw invalidArgument(`unknown command "${argv.join(' ')}"; try "berthd config dump" or "berthd config default"`);
  }
  return parseRunFlags(argv);
}

/** The config berthd runs with: the file, its drop-ins, then the flags. Also what SIGHUP re-reads. */
export function effectiveConfig(configPath: string | undefined, overrides: ReadonlyArray<[string, string]>): { config: BerthConfig; files: string[] } {
  const { config, files } = loadConfigWithSources(configPath);
  for (const [k, v] of overrides) applyOverride(config, k, v);
  checkConfig(config);
  return { config, files };
}

function parseRunFlags(argv: string[]): Command {
  let configPath: string | undefined;
  const overrides: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw invalidArgument(`flag ${flag} needs a value`);
      return v;
    };
    if (flag === '--help' || flag === '-h') return { kind: 'help' };
    if (flag === '--version') return { kind: 'version' };
    if (flag === '--config') configPath = value();
    else if (flag === '--no-metrics') overrides.push(['metrics.enabled', 'false']);
    else if (flag === '--set') {
      const kv = value();
      const at = kv.indexOf('=');
      if (at <= 0) throw invalidArgument(`--set wants KEY=VALUE, got "${kv}"`);
      overrides.push([kv.slice(0, at), kv.slice(at + 1)]);
    } else if (FLAG_KEYS[flag]) overrides.push([FLAG_KEYS[flag], value()]);
    else throw invalidArgument(`unknown flag "${arg}"\n${USAGE}`);
  }
  const { config, files } = effectiveConfig(configPath, overrides);
  return { kind: 'run', config, configPath, overrides, files };
}
