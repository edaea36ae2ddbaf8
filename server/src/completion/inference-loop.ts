// One inference loop owns the model: jobs run one at a time, in order. The newest request for a
// document wins: older pending jobs for it are dropped without being computed, a running one is
// aborted (it stops at its next decode step). Background work (speculation) yields to any request.

export class SupersededError extends Error {
  constructor() {
    super('superseded by a newer request for the same document');
    this.name = 'SupersededError';
  }
}

export class CancelledError extends Error {
  constructor(reason = 'request cancelled') {
    super(reason);
    this.name = 'CancelledError';
  }
}

export type JobPriority = 'foreground' | 'background';

interface Job {
  key: string;
  priority: JobPriority;
  controller: AbortController;
  run: (signal: AbortSignal) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  detach: () => void;
}

export class InferenceLoop {
  private readonly pending: Job[] = [];
  private running: Job | undefined;
  private idleWaiters: (() => void)[] = [];

  /** True when nothing is running or queued. */
  get idle(): boolean {
    return !this.running && this.pending.length === 0;
  }

  get queueLength(): number {
    return this.pending.length;
  }

  /**
   * Queues `run` for `key` (a document URI). `external` is the caller's cancellation (LSP
   * $/cancelRequest): pending jobs are dropped, a running one is aborted.
   */
  submit<T>(key: string, run: (signal: AbortSignal) => Promise<T>, options: { priority?: JobPriority; external?: AbortSignal } = {}): Promise<T> {
    const priority = options.priority ?? 'foreground';
    if (priority === 'foreground') this.supersede(key);
    return new Promise<T>((resolve, reject) => {
      const controller = new AbortController();
      const onExternal = () => this.cancel(job, new CancelledError());
      const job: Job = {
        key,
        priority,
        controller,
        run,
        resolve: resolve as (v: unknown) => void,
        reject,
        detach: () => options.external?.removeEventListener('abort', onExternal),
      };
      if (options.external?.aborted) {
        reject(new CancelledError());
        return;
      }
      options.external?.addEventListener('abort', onExternal, { once: true });
      this.pending.push(job);
      this.pump();
    });
  }

  /** Resolves when the loop has nothing running or queued. */
  whenIdle(): Promise<void> {
    return this.idle ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  private supersede(key: string): void {
    for (const job of [...this.pending]) {
      if (job.key === key || job.priority === 'background') this.cancel(job, job.priority === 'background' ? new CancelledError('background work yields to a request') : new SupersededError());
    }
    const r = this.running;
    if (r && (r.key === key || r.priority === 'background')) r.controller.abort(r.priority === 'background' ? new CancelledError('background work yields to a request') : new SupersededError());
  }

  private cancel(job: Job, reason: Error): void {
    const i = this.pending.indexOf(job);
    if (i >= 0) {
      this.pending.splice(i, 1);
      job.detach();
      job.reject(reason);
    } else if (this.running === job) {
      job.controller.abort(reason);
    }
  }

  private pump(): void {
    if (this.running) return;
    const next = this.pending.shift();
    if (!next) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    this.running = next;
    const signal = next.controller.signal;
    next
      .run(signal)
      .then(
        (v) => (signal.aborted ? next.reject(signal.reason) : next.resolve(v)),
        (e) => next.reject(signal.aborted ? signal.reason : e),
      )
      .finally(() => {
        next.detach();
        this.running = undefined;
        this.pump();
      });
  }
}
