// An ImageService over a temporary root, with the real snapshotter.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultConfig, type BerthConfig } from '../../src/config/config';
import { ImageService } from '../../src/image/service';
import { silentLogger, type Logger } from '../../src/log/logger';
import { Snapshotter } from '../../src/snapshotter/snapshotter';
import { RuntimeMetrics } from '../../src/metrics/runtime_metrics';
import { Registry } from 'prom-client';

export interface ImageFixture {
  dir: string;
  config: BerthConfig;
  snapshotter: Snapshotter;
  images: ImageService;
  cleanup(): Promise<void>;
}

export async function imageFixture(tweak: (c: BerthConfig, dir: string) => void = () => undefined, logger: Logger = silentLogger()): Promise<ImageFixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-image-'));
  const config = defaultConfig();
  config.root = path.join(dir, 'root');
  config.state = path.join(dir, 'state');
  config.image.registry_config_dir = path.join(dir, 'certs.d');
  tweak(config, dir);
  const snapshotter = new Snapshotter(path.join(config.root, 'snapshots'), logger);
  await snapshotter.init();
  const images = await ImageService.open(config, logger, snapshotter, { registryBackoffMs: 20, metrics: new RuntimeMetrics(new Registry()) });
  return {
    dir,
    config,
    snapshotter,
    images,
    cleanup: async () => {
      images.close();
      await snapshotter.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes <registry_config_dir>/<host>/hosts.toml. */
export function writeHostsToml(config: BerthConfig, host: string, toml: string): void {
  const d = path.join(config.image.registry_config_dir, host);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'hosts.toml'), toml);
}

export function listDir(p: string): string[] {
  try {
    return fs.readdirSync(p);
  } catch {
    return [];
  }
}
