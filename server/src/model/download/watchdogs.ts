// Timeouts and the throughput floor for downloads. Node 20's `AbortSignal.any([signal,
// AbortSignal.timeout(ms)])` holds its sources weakly, so the timeout signal can be garbage-collected
// and never fire (nodejs/node#57736); here a plain timer owns the controller it aborts, so the
// timeout lives exactly as long as it is pending.
import { HubError } from './hub';
import { formatDuration } from './limits';

/** An AbortSignal that follows `parent` and, when `timeout` is given, aborts after it. */
export interface LinkedAbort {
  readonly signal: AbortSignal;
  abort(reason: unknown): void;
  /** Clears the timer and stops listening to the parent; call it in `finally`. */
  dispose(): void;
}

/** Longest delay `setTimeout` honours (about 24.8 days); anything longer would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function linkedAbort(parent: AbortSignal | undefined, timeout?: { ms: number; reason: () => Error }): LinkedAbort {
  const controller = new AbortController();
  const onParent = () => controller.abort(parent!.reason);
  let timer: NodeJS.Timeout | undefined;
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParent, { once: true });
  if (timeout && Number.isFinite(timeout.ms) && !controller.signal.aborted) {
    timer = setTimeout(() => controller.abort(timeout.reason()), Math.min(MAX_TIMER_MS, Math.max(0, timeout.ms)));
  }
  return {
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParent);
    },
  };
}

export interface ThroughputFloor {
  /** 0 (or less) turns the rule off. */
  minBytesPerSecond: number;
  windowMs: number;
  /** Names the transfer in the error, e.g. the file's path. */
  what: string;
  /** Called once when the floor is broken, with the error to abort with. */
  onSlow: (err: HubError) => void;
}

/** Samples per window: the floor is checked four times per window, over the last whole window. */
const TICKS_PER_WINDOW = 4;

/**
 * Aborts a transfer whose bytes over the last whole window fall below the floor. Unlike a stall
 * timer reset by every byte, a server sending one byte every few seconds is caught; a transfer
 * shorter than one window is never judged. Holds a fixed few samples, whatever the transfer's size.
 */
export class ThroughputWatch {
  private bytes = 0;
  private readonly samples: number[] = [0];
  private timer: NodeJS.Timeout | undefined;
  /** The error it aborted with, once the floor was broken. */
  tripped: HubError | undefined;

  constructor(private readonly floor: ThroughputFloor) {
    if (floor.minBytesPerSecond > 0 && Number.isFinite(floor.windowMs) && floor.windowMs > 0) {
      this.timer = setInterval(() => this.check(), floor.windowMs / TICKS_PER_WINDOW);
    }
  }

  add(bytes: number): void {
    this.bytes += bytes;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(): void {
    this.samples.push(this.bytes);
    if (this.samples.length > TICKS_PER_WINDOW + 1) this.samples.shift();
    if (this.samples.length <= TICKS_PER_WINDOW) return; // not a whole window yet
    const got = this.bytes - this.samples[0]!;
    const floor = this.floor;
    if (got >= (floor.minBytesPerSecond * floor.windowMs) / 1000) return;
    this.stop();
    const rate = `${(floor.minBytesPerSecond / 1024).toFixed(1)} KiB/s`;
    this.tripped = new HubError(`${floor.what}: slower than ${rate} over ${formatDuration(floor.windowMs)} (${got} bytes arrived)`, 'transient');
    floor.onSlow(this.tripped);
  }
}
