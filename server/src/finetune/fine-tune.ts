// "Fine-tune on this repository": dataset → measure before → train (warmup + cosine, validation,
// early stop, atomic checkpoints, resume, cancel) → save the best → measure after. With a time
// budget (`minutes`), the work is sized to it (validation batches, sequences a step), the step count
// is fitted after a short warm-up (training/time-budget.ts) and the evaluation after stops where the
// budget ends; the time its parent held the process stopped while the user typed counts neither
// against the budget nor in the step timings.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadCompletionModel, readTrainedFacts } from '../completion/completion-model';
import type { DatasetReport } from '../dataset/build-dataset';
import { buildWorkspaceDataset, datasetChoices } from '../dataset/training-preview';
import type { ExampleContextOptions } from '../dataset/example-context';
import { evalContextFor } from '../dataset/workspace-context';
import type { FimOrder } from '../model/fim';
import { loadModelConfig } from '../model/config';
import { DEFAULT_ADAMW } from '../model/graph/adamw';
import type { TrainingMode } from '../model/graph/training-graph';
import type { ExecutionProviderChoice } from '../runtime/execution-provider';
import { batchesOf, stepMicroBatches } from '../training/batches';
import { loadCheckpoint, saveCheckpoint } from '../training/checkpoint-store';
import { evaluateModelPerLine, type EvalReport } from '../evaluation/evaluate';
import { compareOnCommonLines, type PairedDifference } from '../evaluation/paired-difference';
import { learningRate, type LrSchedule } from '../training/lr-schedule';
import { type BudgetFit, type BudgetSizes, batchSizeForBudget, budgetWarmup, fitSchedule, MIN_BUDGET_STEPS, measuredEnough, validationHasRoom } from '../training/time-budget';
import { type RecomputeChoice, recomputesLayers } from '../training/recompute-policy';
import { saveTrainedModel } from '../training/save-result';
import { type TrainerState, TrainerSession } from '../training/trainer-session';
import { StoppedTime } from './stopped-time';

export interface FineTuneOptions {
  workspace: string;
  modelDir: string;
  /** Run folder: `adapter/` (or `model/`), `checkpoint/`, `report.json`. */
  outDir: string;
  mode: TrainingMode;
  lr: number;
  /**
   * Wall-time budget of the whole run, evaluations included; 0 for none. When set, the step count is
   * fitted to it and `maxSteps` and `epochs` only cap it.
   */
  minutes: number;
  maxSteps: number;
  epochs: number;
  batchSize: number;
  seqLen: number;
  accumulation: number;
  warmupSteps: number;
  evalEvery: number;
  /** Validations without improvement before stopping early. */
  patience: number;
  checkpointEvery: number;
  /** Where the training graphs run (evaluation stays on the CPU, where completions are measured). */
  executionProvider: ExecutionProviderChoice;
  /** Per-layer recomputation in the backward (training/recompute-policy.ts); `auto` when its activations would dominate memory. */
  recomputeLayers: RecomputeChoice;
  threads: number;
  seed: number;
  cacheDir: string;
  evalLines: number;
  fimRate: number;
  spmRate: number;
  lineSpanRate: number;
  /** The editor's context: the training examples' blocks and the before/after evaluations use it. */
  context: ExampleContextOptions;
  /** Files the workspace scan reads at most (the rest are excluded as 'limit' and reported). */
  maxFiles: number;
  resume: boolean;
  dryRun: boolean;
}

/** Validation loss is measured on at most this many packed sequences. */
const MAX_VALIDATION_SEQUENCES = 64;

export type FineTuneEvent =
  | { type: 'phase'; phase: 'dataset' | 'evaluate-before' | 'train' | 'save' | 'evaluate-after'; message: string }
  | { type: 'step'; step: number; totalSteps: number; loss: number; lr: number; gradNorm: number; tokensPerSecond: number; etaSeconds: number }
  | { type: 'validation'; step: number; loss: number; best: boolean }
  | { type: 'log'; message: string };

/** Why training ended: its schedule ran out, the time budget did, validation stopped improving, or the user cancelled. */
export type FineTuneEndReason = 'completed' | 'time' | 'early-stop' | 'cancelled';

export interface FineTuneResult {
  dataset: DatasetReport;
  /** Where the adapter (LoRA) or model (full) was written; undefined for a dry run. */
  output?: string;
  before?: EvalReport;
  after?: EvalReport;
  /** after − before line by line on the same held-out lines, with 95% intervals. */
  gain?: PairedDifference;
  steps: number;
  bestStep: number;
  bestValidationLoss: number;
  tokensSeen: number;
  trainSeconds: number;
  /** The whole run's seconds, reading the workspace to the evaluation after (the time held stopped left out). */
  runSeconds: number;
  cancelled: boolean;
  stoppedEarly: boolean;
  endReason: FineTuneEndReason;
  /** The learning-rate schedule trained under (fitted to the budget when there is one). */
  schedule?: LrSchedule;
  /** What the schedule was fitted from, for a budgeted run. */
  budget?: BudgetFit;
  /** The sequences a step and validation batches trained with (a budget may have chosen fewer than asked). */
  sizes?: BudgetSizes;
  resumedFrom?: number;
}

function runId(o: FineTuneOptions, datasetHash: string): string {
  const { workspace, modelDir, mode, lr, batchSize, seqLen, accumulation, seed, fimRate, spmRate, lineSpanRate, context } = o;
  return createHash('sha256')
    .update(JSON.stringify({ workspace, modelDir, mode, lr, batchSize, seqLen, accumulation, seed, fimRate, spmRate, lineSpanRate, context, datasetHash }))
    .digest('hex');
}

/** Of a time budget, what the evaluation before training may take (the one after scores the same lines, so about as long). */
const EVAL_BUDGET_SHARE = 0.2;

/** `stopped`: the spans the parent held this process stopped, reported as they end (worker.ts). */
export async function runFineTune(o: FineTuneOptions, emit: (e: FineTuneEvent) => void, signal?: AbortSignal, stopped = new StoppedTime()): Promise<FineTuneResult> {
  const started = performance.now();
  const budgetSeconds = o.minutes > 0 ? o.minutes * 60 : 0;
  const secondsSince = (t: number) => stopped.activeMs(t) / 1000;
  const secondsLeft = () => budgetSeconds - secondsSince(started);
  emit({ type: 'phase', phase: 'dataset', message: `reading ${o.workspace}` });
  const { dataset } = await buildWorkspaceDataset({ ...datasetChoices(o), signal, onLog: (message: string) => emit({ type: 'log', message }) });
  const report = dataset.report;
  const fimOrders: FimOrder[] = o.spmRate >= 0.5 ? ['spm', 'psm'] : ['psm', 'spm'];
  const empty = {
    dataset: report,
    steps: 0,
    bestStep: 0,
    bestValidationLoss: NaN,
    tokensSeen: 0,
    trainSeconds: 0,
    runSeconds: 0,
    cancelled: false,
    stoppedEarly: false,
    endReason: 'completed' as FineTuneEndReason,
  };
  if (o.dryRun) return { ...empty, runSeconds: secondsSince(started) };
  if (dataset.train.length === 0) throw new Error(`nothing to train on in ${o.workspace}: every file was excluded or empty (run with --dry-run to see why)`);
  mkdirSync(o.outDir, { recursive: true });
  const loadOptions = { executionProvider: 'cpu' as const, threads: o.threads, cacheDir: o.cacheDir };
  // before and after are both measured unquantized: the trained weights carry no quantization measurement
  const choices = { fimOrder: 'auto', quantization: 'none' } as const;
  // the editor's context, from the rest of the workspace (never a held-out file's near-duplicates)
  const evalContext =
    o.context.sources.length === 0
      ? undefined
      : await evalContextFor({ root: o.workspace, dir: o.workspace, files: dataset.validationFiles, sources: o.context.sources, maxTokens: o.context.maxTokens });
  const evalOptions = { maxLines: o.evalLines, seed: o.seed, signal, ...(evalContext === undefined ? {} : { context: evalContext.context }) };
  try {
    emit({ type: 'phase', phase: 'evaluate-before', message: `measuring the base model on ${dataset.validationFiles.length} held-out files` });
    const evalStarted = performance.now();
    const baseModel = await loadCompletionModel(o.modelDir, choices, loadOptions);
    // a budget bounds the evaluation too: at real size 100 lines alone can outlast the whole budget
    const beforeOptions = budgetSeconds > 0 ? { ...evalOptions, maxSeconds: EVAL_BUDGET_SHARE * budgetSeconds } : evalOptions;
    const beforeRun = await evaluateModelPerLine(baseModel, dataset.validationFiles, beforeOptions).finally(() => baseModel.loaded.session.release());
    let before = beforeRun.report;
    // The evaluation after training reads the same files: a budgeted run keeps this long back for it.
    const evalSeconds = secondsSince(evalStarted);

    emit({ type: 'phase', phase: 'train', message: `${report.sequences.train} training sequences of ${o.seqLen} tokens` });
    const trainer = await TrainerSession.create({
      modelDir: o.modelDir,
      mode: o.mode,
      hyper: DEFAULT_ADAMW,
      accumulation: o.accumulation,
      threads: o.threads,
      cacheDir: o.cacheDir,
      seed: o.seed,
      executionProvider: o.executionProvider,
      // the batch asked for: a budget may take fewer sequences a step, never more
      recomputeLayers: recomputesLayers(o.recomputeLayers, loadModelConfig(o.modelDir), { mode: o.mode, batch: o.batchSize, seq: o.seqLen }),
      log: (m) => emit({ type: 'log', message: m }),
    });
    const run = runId(o, createHash('sha256').update(JSON.stringify(report.files)).digest('hex'));
    const checkpointDir = join(o.outDir, 'checkpoint');
    // A corrupt, partial or foreign checkpoint throws a clear error here: it is never loaded.
    const resumed =
      o.resume && existsSync(checkpointDir)
        ? loadCheckpoint(
            checkpointDir,
            run,
            trainer.params.map((p) => p.name),
          )
        : undefined;
    // A bounded, fixed sample (the packer already shuffled): validation must not outweigh training.
    const validationSample = batchesOf((dataset.validation.length ? dataset.validation : dataset.train.slice(0, o.batchSize)).slice(0, MAX_VALIDATION_SEQUENCES), o.batchSize);
    // A resumed run keeps the sizes it chose; a checkpoint older than them trained with the run's own.
    const planned = resumed ? (resumed.meta.sizes ?? { batchSize: o.batchSize, validationBatches: validationSample.length }) : undefined;
    await trainer.openLoss(); // opened once for every validation: not part of one's time
    const validationStarted = performance.now();
    let batchStarted = validationStarted;
    // Under a budget the first validation reads as many batches as fit in its share of it.
    const moreValidation = (done: number) => {
      const lastBatch = stopped.activeMs(batchStarted) / 1000;
      batchStarted = performance.now();
      if (planned) return done < planned.validationBatches;
      return budgetSeconds === 0 || validationHasRoom(secondsSince(validationStarted), lastBatch, budgetSeconds);
    };
    const firstValidation = await trainer.lossWhile(validationSample, moreValidation);
    const validation = validationSample.slice(0, firstValidation.used);
    const secondsPerValidation = secondsSince(validationStarted);
    // Kept back for the end: the evaluation after (as long as the one before) and saving, about one validation.
    const reserveSeconds = evalSeconds + secondsPerValidation;
    const sizes = planned ?? {
      validationBatches: validation.length,
      batchSize:
        budgetSeconds > 0
          ? batchSizeForBudget({
              requested: o.batchSize,
              accumulation: o.accumulation,
              secondsForTraining: secondsLeft() - reserveSeconds - secondsPerValidation,
              secondsPerSequenceForward: secondsPerValidation / validation.reduce((n, b) => n + b.inputIds.length, 0),
            })
          : o.batchSize,
    };
    if (budgetSeconds > 0 && !planned && (sizes.batchSize < o.batchSize || validation.length < validationSample.length))
      emit({
        type: 'log',
        message: `time budget ${o.minutes} min: ${sizes.batchSize} of ${o.batchSize} sequences a step (at least ${MIN_BUDGET_STEPS} steps must fit), validation on ${validation.length} of ${validationSample.length} batches (${secondsPerValidation.toFixed(1)} s)`,
      });
    const { batchSize } = sizes;
    const stepsPerEpoch = Math.ceil(dataset.train.length / (batchSize * o.accumulation));
    const cap = Math.max(1, Math.min(o.maxSteps, o.epochs * stepsPerEpoch));
    // Without a budget this is the schedule; with one, its warm-up length holds and its total is fitted.
    const warmupSteps = Math.min(o.warmupSteps, Math.floor(cap / 4));
    let schedule: LrSchedule = { peak: o.lr, warmupSteps: budgetSeconds > 0 ? budgetWarmup(warmupSteps) : warmupSteps, totalSteps: cap };
    let fit: BudgetFit | undefined;
    let best: { step: number; loss: number; values: TrainerState['values'] } = { step: 0, loss: firstValidation.loss, values: trainer.snapshot().values };
    let stale = 0;
    let tokensSeen = 0;
    let resumedFrom: number | undefined;
    let stoppedEarly = false;
    if (resumed) {
      const { state, best: bestValues, meta } = resumed;
      trainer.restore(state);
      best = { step: meta.bestStep, loss: meta.bestValLoss, values: bestValues };
      stale = meta.stepsWithoutImprovement;
      stoppedEarly = stale >= o.patience; // the run had stopped early: resuming must not train further
      tokensSeen = meta.tokensSeen;
      resumedFrom = meta.step;
      if (budgetSeconds > 0 && meta.budget && meta.schedule) {
        // The plan the interrupted run fitted, not a new one: the resumed run takes the same steps at the
        // same rates; this invocation's minutes only bound this invocation.
        schedule = meta.schedule;
        fit = meta.budget;
      }
      emit({ type: 'log', message: `resumed from step ${meta.step} (best step ${meta.bestStep}, validation loss ${meta.bestValLoss.toFixed(4)})` });
    }
    const t0 = performance.now();
    let cancelled = false;
    let outOfTime = false;
    const timedSteps: [start: number, end: number][] = [];
    const timedSeconds = () => timedSteps.reduce((sum, [start, end]) => sum + stopped.activeMs(start, end), 0) / 1000;
    let stepsThisProcess = 0;
    let checkpointed = trainer.step;
    const checkpoint = () => {
      const meta = { run, bestValLoss: best.loss, bestStep: best.step, stepsWithoutImprovement: stale, tokensSeen, schedule, sizes, ...(fit ? { budget: fit } : {}) };
      saveCheckpoint(checkpointDir, trainer.snapshot(), best.values, meta);
      checkpointed = trainer.step;
    };
    try {
      for (let step = trainer.step; step < schedule.totalSteps && !stoppedEarly; step++) {
        // Let pending messages (a cancel from the parent) run before the next step starts.
        await new Promise((resolve) => setImmediate(resolve));
        if (signal?.aborted) {
          cancelled = true;
          break;
        }
        // Slower steps than measured (or, before the fit, the first steps) have eaten into the time kept
        // for the end: stop with the best so far.
        if (budgetSeconds > 0 && secondsLeft() < (fit?.reserveSeconds ?? reserveSeconds)) {
          outOfTime = true;
          emit({ type: 'log', message: `time budget spent at step ${trainer.step} of ${schedule.totalSteps}; keeping the best so far` });
          if (checkpointed !== trainer.step) checkpoint(); // run again, it goes on from here
          break;
        }
        const lr = learningRate(schedule, step + 1);
        const micro = stepMicroBatches(dataset.train, step, batchSize, o.accumulation);
        const stepStarted = performance.now();
        const { loss, gradNorm } = await trainer.trainStep(micro, lr);
        // The first step of a process pays for allocation and is never timed.
        if (stepsThisProcess++ > 0) timedSteps.push([stepStarted, performance.now()]);
        // A stop during this step is reported once messages are read: read them before the step times are.
        if (budgetSeconds > 0 && !fit) await new Promise((resolve) => setImmediate(resolve));
        if (budgetSeconds > 0 && !fit && measuredEnough(timedSteps.length, timedSeconds(), budgetSeconds)) {
          const costs = { secondsLeft: secondsLeft(), secondsPerStep: timedSeconds() / timedSteps.length, secondsPerValidation, evalEvery: o.evalEvery, reserveSeconds };
          schedule = fitSchedule(schedule, trainer.step, cap, costs);
          fit = { minutes: o.minutes, fittedAtStep: trainer.step, secondsPerStep: costs.secondsPerStep, secondsPerValidation, reserveSeconds };
          emit({
            type: 'log',
            message: `time budget ${o.minutes} min: ${schedule.totalSteps} steps (${costs.secondsPerStep.toFixed(3)} s a step, ${secondsPerValidation.toFixed(2)} s a validation, ${reserveSeconds.toFixed(1)} s kept for the end)`,
          });
        }
        tokensSeen += micro.length * batchSize * o.seqLen;
        const elapsed = secondsSince(t0);
        const done = trainer.step - (resumedFrom ?? 0);
        emit({
          type: 'step',
          step: trainer.step,
          totalSteps: schedule.totalSteps,
          loss,
          lr,
          gradNorm,
          tokensPerSecond: (done * batchSize * o.accumulation * o.seqLen) / elapsed,
          etaSeconds: (elapsed / done) * (schedule.totalSteps - trainer.step),
        });
        const last = trainer.step >= schedule.totalSteps;
        if (trainer.step % o.evalEvery === 0 || last) {
          const valLoss = await trainer.loss(validation);
          const improved = valLoss < best.loss;
          if (improved) best = { step: trainer.step, loss: valLoss, values: trainer.snapshot().values };
          stale = improved ? 0 : stale + 1;
          emit({ type: 'validation', step: trainer.step, loss: valLoss, best: improved });
          if (stale >= o.patience) stoppedEarly = true;
        }
        if (trainer.step % o.checkpointEvery === 0 || last || stoppedEarly) checkpoint();
        if (stoppedEarly) break;
      }
    } finally {
      await trainer.release();
    }
    const trainSeconds = secondsSince(t0);

    emit({ type: 'phase', phase: 'save', message: `saving the best parameters (step ${best.step})` });
    const output = join(o.outDir, o.mode.kind === 'lora' ? 'adapter' : 'model');
    const { contextTokens, contextFormat } = readTrainedFacts(o.modelDir);
    saveTrainedModel({ outDir: output, baseDir: o.modelDir, mode: o.mode, params: trainer.params, values: best.values, fimOrders, keptFacts: { contextTokens, contextFormat } });

    let after: EvalReport | undefined;
    let gain: PairedDifference | undefined;
    if (!cancelled) {
      emit({ type: 'phase', phase: 'evaluate-after', message: 'measuring the fine-tuned model on the same held-out files' });
      const afterStarted = performance.now();
      const tuned =
        o.mode.kind === 'lora' ? await loadCompletionModel(o.modelDir, choices, { ...loadOptions, adapterDir: output }) : await loadCompletionModel(output, choices, loadOptions);
      // the very lines and loss tokens the base model was scored on, however many its bound allowed;
      // under a budget the lines stop where it ends (two at least), compared over those both scored
      const same = { ...evalOptions, signal: undefined, lines: beforeRun.scoredLines, maxLossTokens: before.tokens };
      const bounded = budgetSeconds > 0 ? { ...same, maxSeconds: Math.max(0, secondsLeft()) } : same;
      const afterRun = await evaluateModelPerLine(tuned, dataset.validationFiles, bounded).finally(() => tuned.loaded.session.release());
      after = afterRun.report;
      const compared = compareOnCommonLines(beforeRun, afterRun);
      if (compared.cut)
        emit({ type: 'log', message: `the time budget ended the evaluation after training at ${after.lines} of ${before.lines} lines: both are compared on those` });
      before = compared.before;
      gain = compared.gain;
      emit({ type: 'log', message: `evaluations with their model loads: ${evalSeconds.toFixed(1)} s before training, ${secondsSince(afterStarted).toFixed(1)} s after` });
    }
    const result: FineTuneResult = {
      ...empty,
      output,
      before,
      after,
      gain,
      steps: trainer.step,
      bestStep: best.step,
      bestValidationLoss: best.loss,
      tokensSeen,
      trainSeconds,
      cancelled,
      stoppedEarly,
      endReason: cancelled ? 'cancelled' : stoppedEarly ? 'early-stop' : outOfTime ? 'time' : 'completed',
      schedule,
      budget: fit,
      sizes,
      resumedFrom,
      runSeconds: secondsSince(started),
    };
    writeFileSync(join(o.outDir, 'report.json'), JSON.stringify({ ...result, dataset: { ...report, files: report.files.length, excluded: report.excluded.length } }, null, 2));
    return result;
  } finally {
    evalContext?.dispose(); // the workspace's index is not kept past the run
  }
}
