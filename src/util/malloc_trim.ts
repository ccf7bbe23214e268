// Gives the memory berthd holds free back to the kernel once it is quiet.
// glibc returns freed memory only from the top of a heap, so what a burst of
// work frees below a chunk still in use stays resident: after pulling one
// small image berthd's main heap kept ~5 MiB that malloc_trim(0) releases
// (measured). V8 keeps a young generation a burst grew, and the old
// generation's partly empty pages, until told the process is low on memory.
// Both calls are in build/berth-malloc.node (src/malloc/), loaded on first
// use; where it is missing (a libc without malloc_trim, a tree not built)
// releasing does nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';

interface MallocModule {
  trim(): boolean;
  /** V8's Isolate::LowMemoryNotification: collects with memory-reducing flags and shrinks the young generation. */
  lowMemory(): void;
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
    loaded = typeof mod.exports.trim === 'function' && typeof mod.exports.lowMemory === 'function' ? (mod.exports as MallocModule) : null;
  }
  return loaded;
}

/** malloc_trim(0): true when memory went back to the kernel; false also when the module is missing. */
export function trimMalloc(): boolean {
  return mallocModule()?.trim() ?? false;
}

/**
 * A quiet spell runs V8's collection only once its heap has grown by this
 * much since the last one it ran: after a burst, not after a few stray calls
 * (the collection costs tens of ms of the main thread).
 */
const COLLECT_AFTER_GROWTH_BYTES = 2 * 1024 * 1024;
let heapAfterLastCollection = 0;

/**
 * Gives back what a burst of work left: V8's low-memory collection (it
 * compacts the old generation so its emptied pages go back to the kernel,
 * and shrinks the young generation to its initial size), then malloc_trim.
 */
export function releaseFreeMemory(): void {
  const mod = mallocModule();
  if (mod === null) return;
  if (v8.getHeapStatistics().total_heap_size >= heapAfterLastCollection + COLLECT_AFTER_GROWTH_BYTES) {
    mod.lowMemory();
    heapAfterLastCollection = v8.getHeapStatistics().total_heap_size;
  }
  mod.trim();
}

/**
 * Trims once work has stopped: every activity() pushes the trim back, and it
 * runs when none has come for `quietMs`. One timer per quiet spell (not per
 * call), unref'd, so an idle berthd never wakes for it.
 */
export class QuietTrimmer {
  private lastActivity = 0;
  private timer?: NodeJS.Timeout;
  private recheck?: NodeJS.Immediate;

  constructor(
    private readonly quietMs: number,
    private readonly trim: () => unknown = releaseFreeMemory,
  ) {}

  activity(): void {
    this.lastActivity = performance.now();
    if (this.timer === undefined && this.recheck === undefined) this.arm(this.quietMs);
  }

  /** Drops a pending trim (shutdown). */
  close(): void {
    clearTimeout(this.timer);
    clearImmediate(this.recheck);
    this.timer = this.recheck = undefined;
  }

  private quietFor(): number {
    return performance.now() - this.lastActivity;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.quietFor() < this.quietMs) return this.arm(this.quietMs - this.quietFor());
      // Timers run before I/O in a turn of the event loop: after a stall (the
      // process descheduled on a busy machine) a call may be waiting unread.
      // Look again once this turn's I/O has been taken in.
      this.recheck = setImmediate(() => {
        this.recheck = undefined;
        if (this.quietFor() < this.quietMs) return this.arm(this.quietMs - this.quietFor());
        this.trim();
      });
    }, ms);
    this.timer.unref();
  }
}

/**
 * berthd's: trims 1.5 s after the last CRI call began or ended. That is
 * longer than the gaps within a burst (pod starts, the layers of a pull) and
 * than a kubelet's: it relists a second after its last relist ended, so a
 * node under a kubelet's polling is never quiet (at 1 s, the trim fired
 * between relists and its compacting collection cost berthd 50-80 ms of CPU
 * every few seconds); and short enough that a berthd gone quiet holds no
 * freed memory for long.
 */
export const BERTHD_QUIET_MS = 1500;
export const quietTrimmer = new QuietTrimmer(BERTHD_QUIET_MS);
