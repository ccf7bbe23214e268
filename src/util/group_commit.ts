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

  get idle(): boolean {
    return !this.running && this.waiting.length === 0;
  }

  private run(): void {
    const group = this.waiting;
    this.waiting = [];
    this.running = true;
    let done: Promise<void>;
    try {
      done = this.action();
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
