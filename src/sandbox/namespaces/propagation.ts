// Mount propagation of <state>/pods: on a shared mount (systemd hosts) the
// nsfs binds of pinned namespaces would be copied into peer mount namespaces
// and keep the pod namespaces alive there, so berth makes the directory a
// private bind mount of itself, once, and undoes it on shutdown.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../../errors';
import type { Logger } from '../../log/logger';
import { mountOf, readMountInfoSync } from '../../util/mountinfo';
import type { NamespacePinner } from './pinner';

/** Present in <state>/pods while it is a private bind mount berth made. */
const PRIVATE_MARKER = '.berth-private-mount';

export class PodsMountPropagation {
  private checked = false;

  constructor(
    /** <state>/pods */
    private readonly dir: string,
    private readonly pinner: NamespacePinner,
    private readonly logger: Logger,
  ) {}

  /** Makes the directory private when it sits on a shared mount, leaving a marker for close(). */
  async ensurePrivate(): Promise<void> {
    if (this.checked) return;
    const m = mountOf(this.dir);
    if (m && m.optional.some((o) => o.startsWith('shared:'))) {
      await this.pinner.makePrivate(this.dir);
      fs.writeFileSync(path.join(this.dir, PRIVATE_MARKER), '');
    }
    this.checked = true;
  }

  /** Undoes the private bind mount berth made when no pod has mounts below it any more. */
  async close(): Promise<void> {
    const marker = path.join(this.dir, PRIVATE_MARKER);
    if (!fs.existsSync(marker)) return;
    const root = path.resolve(this.dir);
    const table = readMountInfoSync();
    if (!table.some((m) => m.mountPoint === root)) return;
    if (table.some((m) => m.mountPoint.startsWith(root + '/'))) return;
    fs.rmSync(marker, { force: true });
    this.checked = false;
    await new Promise<void>((resolve) =>
      execFile('umount', [root], (err) => {
        if (err) this.logger.warn('cannot unmount the pods directory', { dir: root, error: errorMessage(err) });
        resolve();
      }),
    );
  }
}
