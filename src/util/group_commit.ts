// Group commit: one run of an action serves every caller that asked for it
// while the previous run was under way. The action is one whose effect covers
// everything done before it starts (an fsync of a directory makes every
// rename made in it so far durable), so a caller needs a run that starts
// after its call; callers arriving during a run all share the next one,
// instead of each paying for its own.
interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit {
  private running = false;
  /** Callers waiting for the next run. */
  private waiting: Waiter[] = [];

  /** `onIdle` is called when a run ends with nobody waiting (its owner may drop it). */
  constructor(
    private readonly action: () => Promise<void>,
    private readonly onIdle: () => void = () => undefined,
  ) {}

  /** Resolves once a run begun after this call has finished; rejects with that run's error. */
  request(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.running) this.run();
    });
  }

  /**
   * When nothing is under way or waiting, runs `ownRun` as this run (it must
   * do what the action does, after its own work: e.g. a write that fsyncs its
   * directory itself) and returns its result; callers arriving meanwhile wait
   * for the next run. Otherwise returns undefined and runs nothing.
   */
  runIfIdle<T>(ownRun: () => Promise<T>): Promise<T> | undefined {
    if (!this.idle) return undefined;
    let result!: Promise<T>;
    this.run(() => {
      try {
        result = ownRun();
      } catch (err) {
        result = Promise.reject(err);
      }
      return result;
    });
    return result;
  }

  get idle(): boolean {
    return !this.running && this.waiting.length === 0;
  }

  private run(action: () => Promise<unknown> = this.action): void {
    const group = this.waiting;
    this.waiting = [];
    this.running = true;
    let done: Promise<unknown>;
    try {
      done = action();
    } catch (err) {
      done = Promise.reject(err);
    }
    done.then(
      () => this.finish(group, undefined),
      (err: unknown) => this.finish(group, { err }),
    );
  }

  private finish(group: Waiter[], failure: { err: unknown } | undefined): void {
    this.running = false;
    for (const w of group) {
      if (failure) w.reject(failure.err);
      else w.resolve();
    }
    if (this.waiting.length > 0) this.run();
    else this.onIdle();
  }
}
