#!/usr/bin/env node
// berthd entry point.
import { redactedConfig, renderConfig, renderConfigReference, renderDefaultConfig } from '../config/config';
import { errorMessage } from '../errors';
import { BERTH_VERSION } from '../version';
import { effectiveConfig, parseArgs, USAGE } from './args';
import { Daemon } from './daemon';

async function main(): Promise<number> {
  let cmd;
  try {
    cmd = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    return 2;
  }
  switch (cmd.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`berthd ${BERTH_VERSION}\n`);
      return 0;
    case 'print-default-config':
      process.stdout.write(renderDefaultConfig());
      return 0;
    case 'print-config-reference':
      process.stdout.write(renderConfigReference());
      return 0;
    case 'dump':
      process.stdout.write(renderConfig(redactedConfig(cmd.config), false, '# berthd effective configuration (file, config.d drop-ins, flags); secrets redacted'));
      return 0;
    case 'run':
      break;
  }
  const daemon = new Daemon(cmd.config);
  try {
    await daemon.start();
  } catch (err) {
    daemon.logger.error(`berthd cannot start: ${errorMessage(err)}`);
    await daemon.stop('start failed').catch(() => undefined);
    return 1;
  }
  return new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      daemon.stop(sig).then(
        () => resolve(0),
        (err: unknown) => {
          daemon.logger.error(`shutdown failed: ${errorMessage(err)}`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    // SIGHUP (systemctl reload): re-read the file, its drop-ins and the same flags; a bad file changes nothing.
    let reloading = Promise.resolve();
    process.on('SIGHUP', () => {
      reloading = reloading.then(async () => {
        try {
          const { config, files } = effectiveConfig(cmd.configPath, cmd.overrides);
          await daemon.reload(config, files);
        } catch (err) {
          daemon.logger.error('config reload failed; the running config is unchanged', { error: errorMessage(err) });
        }
      });
    });
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`berthd: fatal: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
