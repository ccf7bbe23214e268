// Gives the memory glibc's malloc holds free back to the kernel. glibc
// returns freed memory only from the top of a heap, so what a burst of work
// frees below a chunk still in use stays resident: after pulling one small
// image berthd's main heap kept ~5 MiB that malloc_trim(0) releases
// (measured). The call is in build/berth-malloc.node (src/malloc/), loaded on
// first use; where it is missing (a libc without malloc_trim, a tree not
// built) trimming does nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';

interface MallocModule {
  trim(): boolean;
}

/** $BERTH_MALLOC, else build/ of the repository or of the installed tree (dist/src/util -> <root>/build). */
function modulePath(): string | undefined {
  const candidates = [
    process.env.BERTH_MALLOC,
    path.resolve(__dirname, '..', '..', '..', 'build', 'berth-malloc.node'),
    path.resolve(__dirname, '..', '..', 'build', 'berth-malloc.node'),
  ];
  return candidates.find((c): c is string => c !== undefined && fs.existsSync(c));
}

let loaded: MallocModule | null | undefined;

function mallocModule(): MallocModule | null {
  if (loaded === undefined) {
    const file = modulePath();
    const mod = { exports: {} as Partial<MallocModule> };
    if (file !== undefined) process.dlopen(mod, file);
    loaded = typeof mod.exports.trim === 'function' ? (mod.exports as MallocModule) : null;
  }
  return loaded;
}

/** malloc_trim(0): true when memory went back to the kernel; false also when the module is missing. */
export function trimMalloc(): boolean {
  return mallocModule()?.trim() ?? false;
}

/**
 * A quiet spell runs a full collection only once V8's heap has grown by this
 * much since the last one it ran: after a burst, not after the few calls of a
 * kubelet polling every second (a collection costs 10-20 ms of the main thread).
 */
const COLLECT_AFTER_GROWTH_BYTES = 2 * 1024 * 1024;
let heapAfterLastCollection = 0;

/**
 * Gives back what a burst of work left: a full V8 collection, then
 * malloc_trim. berthd runs with --expose-gc and --compact-on-every-full-gc
 * (deploy/node-flags): a burst leaves the old generation's pages partly
 * garbage (after 50 pod starts: 21.7 MiB of pages, 12.9 MiB live), and only a
 * compacting collection empties whole pages so V8 can release them. Where
 * gc is not exposed (tests, other launchers) this only trims.
 */
export function releaseFreeMemory(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined && v8.getHeapStatistics().total_heap_size >= heapAfterLastCollection + COLLECT_AFTER_GROWTH_BYTES) {
    gc();
    heapAfterLastCollection = v8.getHeapStatistics().total_heap_size;
  }
  trimMalloc();
}

/**
 * Trims once work has stopped: every activity() pushes the trim back, and it
 * runs when none has come for `quietMs`. One timer per quiet spell (not per
 * call), unref'd, so an idle berthd never wakes for it.
 */
export class QuietTrimmer {
  private lastActivity = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly quietMs: number,
    private readonly trim: () => unknown = releaseFreeMemory,
  ) {}

  activity(): void {
    this.lastActivity = performance.now();
    if (this.timer === undefined) this.arm(this.quietMs);
  }

  /** Drops a pending trim (shutdown). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const quietFor = performance.now() - this.lastActivity;
      if (quietFor < this.quietMs) return this.arm(this.quietMs - quietFor);
      this.timer = undefined;
      this.trim();
    }, ms);
    this.timer.unref();
  }
}

/**
 * berthd's: trims a second after the last CRI call ends. A second is longer
 * than the gaps within a burst (pod starts, the layers of a pull) and short
 * enough that a berthd gone quiet holds no freed memory.
 */
export const quietTrimmer = new QuietTrimmer(1000);
