// Which requests may keep running: the newest request for a document wins (an older one is aborted
// and stops at its next task in the runtime's queue), background work (speculation) yields to any
// request, and the caller's own cancellation ($/cancelRequest) aborts its request. Policy only: the
// work itself runs as tasks in the runtime's inference server, which observes the signals.
import { CancelledError, SupersededError } from '../runtime/cancellation';
import type { TaskPriority } from '../runtime/generator';

export { CancelledError, SupersededError };

interface Running {
  key: string;
  priority: TaskPriority;
  controller: AbortController;
}

export class RequestScheduler {
  private readonly running = new Set<Running>();
  private idleWaiters: (() => void)[] = [];

  get idle(): boolean {
    return this.running.size === 0;
  }

  /** Resolves when no request is running. */
  whenIdle(): Promise<void> {
    return this.idle ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Runs `work` for `key` (a document URI) with a signal that aborts when a newer foreground
   * request for the key (or any, for background work) begins, or when `external` aborts.
   */
  async run<T>(key: string, work: (signal: AbortSignal) => Promise<T>, options: { priority?: TaskPriority; external?: AbortSignal } = {}): Promise<T> {
    const priority = options.priority ?? 'foreground';
    if (options.external?.aborted) throw new CancelledError();
    if (priority === 'foreground') this.supersede(key);
    const entry: Running = { key, priority, controller: new AbortController() };
    const onExternal = () => entry.controller.abort(new CancelledError());
    options.external?.addEventListener('abort', onExternal, { once: true });
    this.running.add(entry);
    const signal = entry.controller.signal;
    try {
      const value = await work(signal);
      if (signal.aborted) throw signal.reason;
      return value;
    } catch (err) {
      throw signal.aborted ? signal.reason : err;
    } finally {
      options.external?.removeEventListener('abort', onExternal);
      this.running.delete(entry);
      if (this.idle) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private supersede(key: string): void {
    for (const r of this.running) {
      if (r.priority === 'background') r.controller.abort(new CancelledError('background work yields to a request'));
      else if (r.key === key) r.controller.abort(new SupersededError());
    }
  }
}
