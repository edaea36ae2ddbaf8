// Rate limiting for pushed notifications (stats to the status bar): at most one call every `ms`,
// and the latest arguments always get through in a trailing call.

export interface Throttled<A extends unknown[]> {
  (...args: A): void;
  /** Drops a pending trailing call and stops the timer (call on dispose). */
  cancel(): void;
  /** Runs a pending trailing call now, if any. */
  flush(): void;
}

/**
 * The first call runs at once and opens an `ms` window; calls inside the window only remember their
 * arguments, and when the window closes the latest of them runs and opens the next window.
 */
export function throttle<A extends unknown[]>(fn: (...args: A) => void, ms: number): Throttled<A> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pending: A | undefined;

  const run = (args: A): void => {
    pending = undefined;
    timer = setTimeout(windowClosed, ms);
    fn(...args);
  };
  const windowClosed = (): void => {
    timer = undefined;
    if (pending) run(pending);
  };

  const throttled = ((...args: A): void => {
    if (timer === undefined) run(args);
    else pending = args;
  }) as Throttled<A>;
  throttled.cancel = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    pending = undefined;
  };
  throttled.flush = () => {
    if (!pending) return;
    if (timer !== undefined) clearTimeout(timer);
    run(pending);
  };
  return throttled;
}
