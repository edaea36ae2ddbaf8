// The time a fine-tune process was held stopped by its parent (while the user typed), as reported
// to it after each stop, so its time budget and step timings count only the time it could run.
// Reports come late (after the step a stop fell in, when the process reads its messages), so each
// span is kept with its times and durations are computed from them when they are read.
import { performance } from 'node:perf_hooks';
import type { StoppedSpan } from './child-stop';

export class StoppedTime {
  /** Spans in this process's performance.now() milliseconds. */
  private readonly spans: { from: number; to: number }[] = [];

  /** A span reported by the parent, in epoch milliseconds. */
  add(span: StoppedSpan): void {
    const from = span.from - performance.timeOrigin;
    const to = span.to - performance.timeOrigin;
    if (to > from) this.spans.push({ from, to });
  }

  /** Milliseconds from `from` to `to` (performance.now() times) less the stopped spans reported within them. */
  activeMs(from: number, to: number = performance.now()): number {
    let stopped = 0;
    for (const s of this.spans) stopped += Math.max(0, Math.min(to, s.to) - Math.max(from, s.from));
    return Math.max(0, to - from - stopped);
  }

  /** Milliseconds stopped in all, as reported so far. */
  get totalMs(): number {
    return this.spans.reduce((sum, s) => sum + (s.to - s.from), 0);
  }
}
