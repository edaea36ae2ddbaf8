// Work kept off the keystroke path: tasks run one at a time in short slices of the event loop, only
// once the editor has been quiet for a moment, and each slice yields (setImmediate) so a request
// that arrives meanwhile is served first.

export interface IdleQueueOptions {
  /** Quiet time after the last keystroke before any task runs (default 250 ms). */
  quietMs: number;
  /** Work per slice before yielding (default 8 ms). */
  sliceMs: number;
  /** A clock (tests pass a fake one). */
  now?: () => number;
}

type Task = () => Promise<void> | void;

export class IdleQueue {
  private readonly tasks: { key: string; run: Task }[] = [];
  private lastActivity = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly options: IdleQueueOptions;
  private idleWaiters: (() => void)[] = [];
  /** Tasks run so far (the storm test bounds this). */
  ran = 0;

  constructor(options: Partial<IdleQueueOptions> = {}) {
    this.options = { quietMs: 250, sliceMs: 8, ...options };
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** The user is typing: tasks wait until they stop. */
  touch(): void {
    this.lastActivity = this.now();
  }

  /** Queues a task; a queued task with the same key is replaced (the newest version of a file wins). */
  add(key: string, run: Task): void {
    if (this.disposed) return;
    const known = this.tasks.findIndex((t) => t.key === key);
    if (known >= 0) this.tasks.splice(known, 1);
    this.tasks.push({ key, run });
    this.schedule();
  }

  get pending(): number {
    return this.tasks.length;
  }

  /** Resolves when no task is queued or running. */
  idle(): Promise<void> {
    if (this.tasks.length === 0 && !this.running) return Promise.resolve();
    this.timer?.ref(); // someone waits for the work: it must keep the process alive
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  dispose(): void {
    this.disposed = true;
    this.tasks.length = 0;
    clearTimeout(this.timer);
    this.settle();
  }

  private settle(): void {
    if (this.tasks.length > 0 || this.running) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private schedule(): void {
    if (this.running || this.timer !== undefined || this.disposed) return;
    const wait = Math.max(0, this.lastActivity + this.options.quietMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.slice();
    }, wait);
    // nobody waiting: queued context work alone does not keep a process (a CLI run, a test) alive
    if (this.idleWaiters.length === 0) this.timer.unref();
  }

  private async slice(): Promise<void> {
    if (this.disposed) return;
    if (this.now() - this.lastActivity < this.options.quietMs) return this.schedule();
    this.running = true;
    const started = this.now();
    try {
      while (this.tasks.length > 0 && this.now() - started < this.options.sliceMs) {
        const task = this.tasks.shift()!;
        this.ran++;
        try {
          await task.run();
        } catch {
          // a file that vanished or could not be read simply adds no context
        }
      }
    } finally {
      this.running = false;
    }
    if (this.tasks.length > 0) setImmediate(() => this.schedule());
    else this.settle();
  }
}
