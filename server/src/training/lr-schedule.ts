// Learning rate per optimizer step: linear warmup, then cosine decay to a floor.

export interface LrSchedule {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  /** Fraction of the peak the cosine ends at (default 0.1). */
  minRatio?: number;
}

/** Learning rate of 1-based optimizer step `step`. */
export function learningRate(s: LrSchedule, step: number): number {
  const floor = s.peak * (s.minRatio ?? 0.1);
  if (s.warmupSteps > 0 && step <= s.warmupSteps) return (s.peak * step) / s.warmupSteps;
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  return floor + (s.peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
