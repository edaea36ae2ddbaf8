// A fine-tune bounded by wall time: after a short warm-up the step count is fitted to the minutes
// left, from the measured seconds per step and per validation, keeping back the time the work after
// training needs (the final validation, saving, the held-out evaluation after). The fitted schedule
// is persisted in the checkpoint, so a resumed run trains exactly the steps the first one planned.
import type { LrSchedule } from './lr-schedule';

/** Steps timed after the first (which pays for allocation and is never timed) before fitting. */
export const BUDGET_MEASURE_STEPS = 3;
/** Fitting starts earlier when the timed steps already took this share of the budget. */
export const BUDGET_MEASURE_SHARE = 0.05;

/**
 * A budgeted schedule's warm-up spans at least the steps measured before the fit (the untimed first
 * and the timed ones): the learning rate of a warm-up step does not depend on the total, so the
 * steps taken before the total was known ran at the fitted schedule's rates.
 */
export function budgetWarmup(warmupSteps: number): number {
  return Math.max(warmupSteps, BUDGET_MEASURE_STEPS + 1);
}

/** What a budgeted schedule was fitted from, persisted beside it. */
export interface BudgetFit {
  minutes: number;
  /** Steps trained when the schedule was fitted. */
  fittedAtStep: number;
  secondsPerStep: number;
  secondsPerValidation: number;
  /** Kept back for the work after training. */
  reserveSeconds: number;
}

/** The costs a fit reads: all measured in this run except `reserveSeconds`, estimated from measurements. */
export interface BudgetCosts {
  /** Seconds until the deadline. */
  secondsLeft: number;
  secondsPerStep: number;
  secondsPerValidation: number;
  evalEvery: number;
  /** The evaluation after training (as long as the one before, on the same files) and saving. */
  reserveSeconds: number;
}

/**
 * Optimizer steps the run can still take: each step costs its own time plus its share of the
 * periodic validation; one more validation (the last step's) and the reserve are kept back.
 */
export function stepsThatFit(c: BudgetCosts): number {
  const perStep = c.secondsPerStep + c.secondsPerValidation / Math.max(1, c.evalEvery);
  const usable = c.secondsLeft - c.reserveSeconds - c.secondsPerValidation;
  if (!(perStep > 0) || !(usable > 0)) return 0;
  return Math.floor(usable / perStep);
}

/** Whether warm-up has timed enough steps to fit: `timed` steps over `timedSeconds` of a `budgetSeconds` run. */
export function measuredEnough(timed: number, timedSeconds: number, budgetSeconds: number): boolean {
  return timed >= BUDGET_MEASURE_STEPS || (timed >= 1 && timedSeconds >= BUDGET_MEASURE_SHARE * budgetSeconds);
}

/**
 * The budgeted schedule: the warm-up length is fixed before fitting (the warm-up steps already ran
 * under it), the total is the steps done plus those that fit, within the cap and never below the
 * steps done.
 */
export function fitSchedule(provisional: LrSchedule, stepsDone: number, cap: number, costs: BudgetCosts): LrSchedule {
  const totalSteps = Math.max(stepsDone, Math.min(cap, stepsDone + stepsThatFit(costs)));
  return { ...provisional, totalSteps: Math.max(1, totalSteps) };
}

/** Of a time budget, what one validation may take: the loss is measured on as many batches as fit in it, at least one. */
export const VALIDATION_BUDGET_SHARE = 0.03;

/** A budgeted run trains on fewer sequences a step rather than take fewer optimizer steps than this. */
export const MIN_BUDGET_STEPS = 24;

/**
 * A training step's seconds over a forward of the same sequences, for sizing the batch before any step
 * ran, rounded up: the LoRA step of the 0.5B shape on one thread measured 2.4× its forward at one
 * sequence of 256 tokens and 2.9× at two (8.2 vs 3.4 s, 17.6 vs 6.1 s); the fit then replaces it with
 * measured steps.
 */
export const STEP_SECONDS_PER_FORWARD = 3;

/** The sizes a budgeted run chose before training, persisted so that a resumed run trains and validates alike. */
export interface BudgetSizes {
  /** Sequences per micro-batch of every step. */
  batchSize: number;
  /** The validation loss is measured on this many batches of the fixed validation sample. */
  validationBatches: number;
}

/**
 * Sequences per step under a budget: the requested count unless fewer than MIN_BUDGET_STEPS steps of
 * it would fit in `secondsForTraining`; then as many as let them fit, at least one. At real size on a
 * CPU a step of 4 × 256 tokens takes over a minute, so a five-minute budget would otherwise train one
 * or two steps.
 */
export function batchSizeForBudget(o: { requested: number; accumulation: number; secondsForTraining: number; secondsPerSequenceForward: number }): number {
  const secondsPerSequenceStep = STEP_SECONDS_PER_FORWARD * o.secondsPerSequenceForward * o.accumulation;
  if (!(secondsPerSequenceStep > 0)) return o.requested;
  const fitting = Math.floor(o.secondsForTraining / (MIN_BUDGET_STEPS * secondsPerSequenceStep));
  return Math.max(1, Math.min(o.requested, fitting));
}

/** Whether a budgeted validation goes on to another batch: `elapsed` seconds so far, the last batch took `lastBatch`. */
export function validationHasRoom(elapsed: number, lastBatch: number, budgetSeconds: number): boolean {
  return elapsed + lastBatch <= VALIDATION_BUDGET_SHARE * budgetSeconds;
}
