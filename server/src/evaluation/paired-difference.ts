// How much better one predictor is than another on the same lines: the mean of the per-line
// differences with a normal-approximation 95% interval. Pairing removes the spread between lines
// (hard and easy ones), which dominates when two predictors are compared by their separate means.
import { type EvalReport, type LineScore, lineFigures } from './evaluate';

export interface Difference {
  /** Mean of a − b over the lines. */
  mean: number;
  /** 95% confidence interval of the mean (±1.96 standard errors); NaN with fewer than two lines. */
  low: number;
  high: number;
}

export interface PairedDifference {
  lines: number;
  exactMatch: Difference;
  editSimilarity: Difference;
}

function difference(deltas: readonly number[]): Difference {
  const n = deltas.length;
  if (n === 0) return { mean: NaN, low: NaN, high: NaN };
  const mean = deltas.reduce((a, d) => a + d, 0) / n;
  if (n < 2) return { mean, low: NaN, high: NaN };
  const variance = deltas.reduce((a, d) => a + (d - mean) ** 2, 0) / (n - 1);
  const half = 1.96 * Math.sqrt(variance / n);
  return { mean, low: mean - half, high: mean + half };
}

/** a − b line by line; both must score the same lines in the same order. */
export function pairedDifference(a: readonly LineScore[], b: readonly LineScore[]): PairedDifference {
  if (a.length !== b.length) throw new RangeError(`paired scores need the same lines (${a.length} vs ${b.length})`);
  return {
    lines: a.length,
    exactMatch: difference(a.map((x, i) => Number(x.exact) - Number(b[i]!.exact))),
    editSimilarity: difference(a.map((x, i) => x.similarity - b[i]!.similarity)),
  };
}

/**
 * `after` against `before` over the lines both scored, in order: a time-bounded `after` may stop
 * before `before` did. `before`'s line figures are restated over those lines (its loss is unchanged:
 * both score the same loss tokens); `cut` says whether any line was left out.
 */
export function compareOnCommonLines(
  before: { report: EvalReport; perLine: readonly LineScore[] },
  after: { perLine: readonly LineScore[] },
): { before: EvalReport; gain: PairedDifference; cut: boolean } {
  const n = Math.min(before.perLine.length, after.perLine.length);
  const common = before.perLine.slice(0, n);
  const cut = n < before.perLine.length;
  return { before: cut ? { ...before.report, ...lineFigures(common), lines: n } : before.report, gain: pairedDifference(after.perLine.slice(0, n), common), cut };
}
