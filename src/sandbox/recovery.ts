// Start-up reconciliation of the pod records with the machine: pods left
// half-created by a killed berthd are rolled back, ready pods whose
// namespaces are gone (reboot, or their berth-pause died) become NOTREADY,
// and pod directories with no record are removed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors';
import { isPinned } from './namespaces/mounts';
import { readMountInfoSync } from '../util/mountinfo';
import { killPause, pauseAlive } from './namespaces/pause';
import type { SandboxParts } from './parts';
import type { SandboxRecord } from './record';
import { markNotReady } from './state';
import { type PodTeardown } from './teardown';
import { removeTree } from '../util/remove_tree';

export async function recoverPods(d: SandboxParts, teardown: PodTeardown): Promise<void> {
  fs.mkdirSync(d.podsStateDir, { recursive: true, mode: 0o700 });
  for (const rec of d.store.load()) {
    if (rec.state === 'creating') {
      d.logger.warn('rolling back a pod sandbox left half-created', { id: rec.id, name: rec.metadata.name });
      try {
        await teardown.undoAll(rec);
        await d.store.delete(rec.id);
      } catch (err) {
        // The record stays ('creating', hidden) for the next start to retry. It
        // holds no name: RunPodSandbox never returned this id, so the kubelet
        // retries with the same name and attempt and must not be refused.
        d.logger.error('rollback of a half-created pod sandbox failed', { id: rec.id, error: errorMessage(err) });
      }
      continue;
    }
    if (rec.state === 'ready' && !namespacesIntact(rec)) {
      d.logger.warn('pod sandbox namespaces are gone; marking it NOTREADY', { id: rec.id, name: rec.metadata.name });
      try {
        await killPause(rec);
        await d.pinner.unpin(path.join(rec.stateDir, 'ns'), rec.shmPath);
      } catch (err) {
        d.logger.warn('cleaning up a broken pod sandbox failed', { id: rec.id, error: errorMessage(err) });
      }
      await d.store.update(rec.id, markNotReady);
    }
  }
  await removeOrphanDirs(d);
}

function namespacesIntact(rec: SandboxRecord): boolean {
  const table = readMountInfoSync();
  for (const p of Object.values(rec.nsPaths)) if (p && !isPinned(p, table)) return false;
  if (rec.pausePid !== undefined && !pauseAlive(rec)) return false;
  return true;
}

async function removeOrphanDirs(d: SandboxParts): Promise<void> {
  for (const base of [d.podsStateDir, d.podsRootDir]) {
    for (const name of fs.readdirSync(base)) {
      if (!/^[0-9a-f]{64}$/.test(name) || d.store.get(name)) continue;
      const dir = path.join(base, name);
      try {
        if (base === d.podsStateDir) await d.pinner.unpin(path.join(dir, 'ns'), path.join(dir, 'shm'));
        await removeTree(dir);
        d.logger.info('removed the leftovers of a pod sandbox with no record', { dir });
      } catch (err) {
        d.logger.warn('cannot remove pod sandbox leftovers', { dir, error: errorMessage(err) });
      }
    }
  }
}
