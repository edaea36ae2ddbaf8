// The time budget's arithmetic: how many steps fit in the time left once the end's work is kept
// back, when warm-up has measured enough, the fitted schedule (warm-up kept, total fitted and capped),
// and the sizes chosen before training (sequences a step, validation batches). The palette's choice
// of budget and cap sits beside it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fineTuneLength } from '../../client/src/fine-tune-text';
import { learningRate } from '../../server/src/training/lr-schedule';
import {
  BUDGET_MEASURE_STEPS,
  batchSizeForBudget,
  budgetWarmup,
  fitSchedule,
  MIN_BUDGET_STEPS,
  measuredEnough,
  STEP_SECONDS_PER_FORWARD,
  stepsThatFit,
  VALIDATION_BUDGET_SHARE,
  validationHasRoom,
} from '../../server/src/training/time-budget';

const costs = { secondsLeft: 100, secondsPerStep: 0.5, secondsPerValidation: 2, evalEvery: 10, reserveSeconds: 8 };

describe('time budget', () => {
  it('fits the steps whose time, with their share of the validations, fills what is left after the reserve and the last validation', () => {
    // usable 100 − 8 − 2 = 90 s; a step costs 0.5 + 2/10 = 0.7 s → 128 steps (128·0.7 = 89.6 ≤ 90 < 129·0.7)
    const n = stepsThatFit(costs);
    assert.equal(n, 128);
    assert.ok(n * 0.7 + 8 + 2 <= 100 && (n + 1) * 0.7 + 8 + 2 > 100);
  });

  it('no time left, or a reserve larger than it, fits no step', () => {
    assert.equal(stepsThatFit({ ...costs, secondsLeft: 5 }), 0);
    assert.equal(stepsThatFit({ ...costs, secondsLeft: -3 }), 0);
    assert.equal(stepsThatFit({ ...costs, secondsPerStep: 0, secondsPerValidation: 0 }), 0, 'an unmeasured cost never fits unbounded steps');
  });

  it('warm-up measures a few steps, or fewer when those already took a share of the budget', () => {
    assert.equal(measuredEnough(0, 0, 60), false);
    assert.equal(measuredEnough(1, 0.1, 60), false);
    assert.equal(measuredEnough(BUDGET_MEASURE_STEPS, 0.1, 60), true);
    assert.equal(measuredEnough(1, 10, 60), true, 'one slow step of a short budget is enough');
  });

  it('a budgeted warm-up spans the measured steps, so their rates do not depend on the total fitted after them', () => {
    assert.equal(budgetWarmup(0), BUDGET_MEASURE_STEPS + 1);
    assert.equal(budgetWarmup(10), 10);
    const warm = { peak: 1e-3, warmupSteps: budgetWarmup(2) };
    for (let s = 1; s <= BUDGET_MEASURE_STEPS + 1; s++) assert.equal(learningRate({ ...warm, totalSteps: 100_000 }, s), learningRate({ ...warm, totalSteps: 17 }, s), `step ${s}`);
  });

  it('the fitted schedule keeps the warm-up and the learning rates already used, and never ends before the steps done', () => {
    const provisional = { peak: 1e-3, warmupSteps: 10, totalSteps: 100_000 };
    const fitted = fitSchedule(provisional, 4, 100_000, costs);
    assert.deepEqual(fitted, { peak: 1e-3, warmupSteps: 10, totalSteps: 4 + 128 });
    for (let s = 1; s <= 4; s++) assert.equal(learningRate(fitted, s), learningRate(provisional, s), `step ${s}`);
    assert.equal(fitSchedule(provisional, 4, 50, costs).totalSteps, 50, 'a cap still caps');
    assert.equal(fitSchedule(provisional, 4, 100_000, { ...costs, secondsLeft: 1 }).totalSteps, 4, 'no time left: the steps done');
  });

  it('keeps the requested batch while enough steps of it fit, and takes fewer sequences a step when they would not', () => {
    const forward = 0.01; // s a sequence: a step of 4 sequences is estimated at 4 × STEP_SECONDS_PER_FORWARD × 0.01 s
    const enough = MIN_BUDGET_STEPS * 4 * STEP_SECONDS_PER_FORWARD * forward;
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: enough, secondsPerSequenceForward: forward }), 4);
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: enough * 0.99, secondsPerSequenceForward: forward }), 3);
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: enough / 2, secondsPerSequenceForward: forward }), 2);
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 2, secondsForTraining: enough, secondsPerSequenceForward: forward }), 2, 'accumulated micro-batches count');
    // the 0.5B shape on one thread: 3.4 s a sequence's forward, ~2 of 5 minutes left for training
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: 120, secondsPerSequenceForward: 3.4 }), 1, 'never below one sequence');
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: -5, secondsPerSequenceForward: 3.4 }), 1);
    assert.equal(batchSizeForBudget({ requested: 4, accumulation: 1, secondsForTraining: 100, secondsPerSequenceForward: 0 }), 4, 'an unmeasured cost changes nothing');
  });

  it('a budgeted validation goes on while the next batch, as long as the last, still fits in its share', () => {
    const share = VALIDATION_BUDGET_SHARE * 300;
    assert.equal(validationHasRoom(0.5 * share, 0.5 * share, 300), true);
    assert.equal(validationHasRoom(0.5 * share, 0.51 * share, 300), false);
    assert.equal(validationHasRoom(2 * share, 0.1, 300), false);
  });
});

describe("the palette's run length", () => {
  it('minutes drive it; maxSteps caps it only when the user set it; minutes 0 leaves the steps alone', () => {
    assert.deepEqual(fineTuneLength(5, 200, false), { minutes: 5 });
    assert.deepEqual(fineTuneLength(5, 300, true), { minutes: 5, maxSteps: 300 });
    assert.deepEqual(fineTuneLength(0, 200, false), { maxSteps: 200 });
    assert.deepEqual(fineTuneLength(undefined, undefined, false), {});
  });
});
