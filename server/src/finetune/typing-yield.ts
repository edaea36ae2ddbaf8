// The fine-tune yields to typing: while a completion request is in flight, and for a short grace
// after the last one ends, the training process is held stopped; it runs again once typing pauses.
// A training step takes seconds at real size, so yielding between steps could not help a keystroke
// that arrives mid-step, and a lower OS priority still leaves it the cores' caches and memory
// bandwidth: only stopping it frees them. A burst of keystrokes stops it once, however many requests
// it sends, so signals never flap at the rate of typing.

/** What is held: the fine-tune process (finetune/fine-tune-process.ts). Both calls are idempotent. */
export interface Suspendable {
  suspend(): void;
  resume(): void;
}

/** The timers the grace runs on (injected in tests). */
export interface YieldTimers {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const NODE_TIMERS: YieldTimers = {
  set: (run, ms) => setTimeout(run, ms).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * How long the process stays held after the last request ends: longer than the pause between two
 * keystrokes of steady typing (~100–300 ms), so a line typed is one stop, and short enough that a
 * reading pause gives training the machine back quickly.
 */
export const TYPING_GRACE_MS = 400;

export interface TypingYieldOptions {
  enabled?: boolean;
  graceMs?: number;
  timers?: YieldTimers;
}

export class TypingYield {
  private target: Suspendable | undefined;
  private inFlight = 0;
  private held = false;
  private graceTimer: unknown;
  private enabled: boolean;
  private disposed = false;
  private readonly graceMs: number;
  private readonly timers: YieldTimers;

  constructor(options: TypingYieldOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.graceMs = options.graceMs ?? TYPING_GRACE_MS;
    this.timers = options.timers ?? NODE_TIMERS;
  }

  /** Whether the attached process is held now. */
  get holding(): boolean {
    return this.held;
  }

  /** A completion request begins: call the returned function when it ends (once; later calls do nothing). */
  begin(): () => void {
    if (this.disposed) return () => {};
    this.inFlight++;
    this.cancelGrace();
    this.hold();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (this.inFlight === 0 && this.held) this.graceTimer = this.timers.set(() => this.release(), this.graceMs);
    };
  }

  /** The process to hold while typing (one at a time); the returned function detaches it, resumed. */
  attach(target: Suspendable): () => void {
    this.detach();
    if (this.disposed) return () => {};
    this.target = target;
    if (this.inFlight > 0) this.hold(); // a request in flight now: hold it from the start
    return () => {
      if (this.target === target) this.detach();
    };
  }

  /** `kiln.fineTune.yieldToTyping`: switched off, a held process is resumed at once. */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    if (!enabled) this.release();
  }

  /** Resumes the process and holds nothing again (the server is shutting down). */
  dispose(): void {
    this.disposed = true;
    this.detach();
  }

  private hold(): void {
    if (this.held || !this.enabled || !this.target) return;
    this.held = true;
    this.target.suspend();
  }

  private release(): void {
    this.cancelGrace();
    if (!this.held) return;
    this.held = false;
    this.target?.resume();
  }

  private detach(): void {
    this.release();
    this.target = undefined;
  }

  private cancelGrace(): void {
    if (this.graceTimer === undefined) return;
    this.timers.clear(this.graceTimer);
    this.graceTimer = undefined;
  }
}
