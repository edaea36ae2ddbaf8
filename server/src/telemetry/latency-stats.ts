// Rolling latency and KV-reuse figures over the last N answers, for the status bar and `kiln bench`.
import { COMPLETION_SOURCES, type CompletionSource, type CompletionTimings } from './timings';

/** A plain, JSON-able summary of the window; figures with no data are null. */
export interface StatsSnapshot {
  /** Answers in the window. */
  count: number;
  /** Window capacity. */
  window: number;
  /** Answers recorded since start, window or not. */
  recorded: number;
  /**
   * Total latency of the model-computed answers in the window. Answers that skip model work
   * (typing-through, the answer cache, speculation) take about 0 ms and would hide what the model
   * costs, so they are counted apart, in `bySource`.
   */
  p50Ms: number | null;
  p95Ms: number | null;
  /** Total latency of the most recent answer, any source. */
  lastMs: number | null;
  /** reused / (reused + computed) prompt tokens, summed over the model answers in the window. */
  reuseRatio: number | null;
  /** Decode tokens per second, summed over the model answers in the window. */
  decodeTokensPerSecond: number | null;
  /** Answers in the window by source. */
  bySource: Record<CompletionSource, number>;
}

/**
 * The `p`-th percentile (0..100) of ascending `sorted` values by the nearest-rank method: the
 * smallest value with at least p% of the data at or below it (rank ceil(p/100 * n)). It always
 * returns an observed value; null for no data.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export class LatencyStats {
  /** Ring buffer of the last `window` answers; `next` is where the next one goes. */
  private readonly ring: CompletionTimings[] = [];
  private next = 0;
  private recorded = 0;
  private last: CompletionTimings | undefined;

  constructor(readonly window = 200) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`latency window must be a positive integer, got ${window}`);
  }

  record(t: CompletionTimings): void {
    if (this.ring.length < this.window) this.ring.push(t);
    else this.ring[this.next] = t;
    this.next = (this.next + 1) % this.window;
    this.recorded++;
    this.last = t;
  }

  /** Forgets the window (not the `recorded` count). */
  reset(): void {
    this.ring.length = 0;
    this.next = 0;
    this.last = undefined;
  }

  snapshot(): StatsSnapshot {
    const all = this.ring;
    const model = all.filter((t) => t.source === 'model');
    const modelTotals = model.map((t) => t.totalMs).sort((a, b) => a - b);
    const bySource = Object.fromEntries(COMPLETION_SOURCES.map((s) => [s, 0])) as Record<CompletionSource, number>;
    for (const t of all) bySource[t.source]++;
    let reused = 0;
    let computed = 0;
    let decodeTokens = 0;
    let decodeMs = 0;
    for (const t of model) {
      reused += t.prefillReused;
      computed += t.prefillComputed;
      decodeTokens += t.decodeTokens;
      decodeMs += t.decodeMs;
    }
    return {
      count: all.length,
      window: this.window,
      recorded: this.recorded,
      p50Ms: percentile(modelTotals, 50),
      p95Ms: percentile(modelTotals, 95),
      lastMs: this.last?.totalMs ?? null,
      reuseRatio: reused + computed > 0 ? reused / (reused + computed) : null,
      decodeTokensPerSecond: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : null,
      bySource,
    };
  }
}
