// kiln/fineTune: runs the training child process for the client, relays its progress, honours
// cancellation, and summarises the measured before/after figures. Completions keep being served
// by this process meanwhile: training runs elsewhere at lower priority, held stopped while the user
// types (`typing`, finetune/typing-yield.ts).
import { type CancellationToken, LSPErrorCodes, ResponseError } from 'vscode-languageserver/node';
import { defaultCacheDir } from '../model/graph/build-cache';
import type { FineTuneEvalFigures, FineTuneParams, FineTuneSummary, TrainingProgress } from '../protocol';
import type { ExecutionProviderChoice } from '../runtime/execution-provider';
import type { FineTuneEvent, FineTuneOptions } from '../finetune/fine-tune';
import type { ContextSourceName } from '../context/snippet';
import { buildFineTuneOptions } from '../finetune/fine-tune-options';
import type { EvalReport } from '../evaluation/evaluate';
import { startFineTuneProcess } from '../finetune/fine-tune-process';
import type { TypingYield } from '../finetune/typing-yield';

export interface FineTuneContext {
  modelPath: string | undefined;
  cacheDir: string | undefined;
  /** The `kiln.executionProvider` setting: training runs where completions run. */
  executionProvider: ExecutionProviderChoice;
  /** The editor's kiln.context.* (sources empty when context is off): the examples' blocks and the evaluations use them. */
  context?: { sources: readonly ContextSourceName[]; maxTokens: number };
  progress: (p: TrainingProgress) => void;
  /** Holds the training process while completions run; it is attached for the run and detached, resumed, after. */
  typing?: Pick<TypingYield, 'attach'>;
}

let running = false;

function figures(r: EvalReport | undefined): FineTuneEvalFigures | undefined {
  return r && { exactMatch: r.exactMatch, editSimilarity: r.editSimilarity, validationLoss: r.validationLoss, lines: r.lines, files: r.files };
}

function progressOf(e: FineTuneEvent): TrainingProgress {
  switch (e.type) {
    case 'phase':
      return { state: 'running', phase: e.phase, message: e.message };
    case 'log':
      return { state: 'running', message: e.message };
    case 'step':
      return { state: 'running', phase: 'train', step: e.step, totalSteps: e.totalSteps, loss: e.loss, tokensPerSecond: e.tokensPerSecond, etaSeconds: e.etaSeconds };
    case 'validation':
      return { state: 'running', phase: 'train', step: e.step, validationLoss: e.loss };
  }
}

/** A count the client may leave unset; anything but a positive integer is refused, not clamped. */
function positiveCount(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new ResponseError(LSPErrorCodes.RequestFailed, `${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

/** A duration the client may leave unset; anything but a positive finite number is refused. */
function positiveMinutes(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new ResponseError(LSPErrorCodes.RequestFailed, `minutes must be a positive number, got ${JSON.stringify(value)}`);
  return value;
}

/** A kiln/fineTune (or preview) request's choices, checked, through the builder `kiln finetune` uses too. */
export function fineTuneOptions(params: FineTuneParams, modelPath: string, cacheDir: string, executionProvider: ExecutionProviderChoice = 'cpu'): FineTuneOptions {
  return buildFineTuneOptions({
    workspace: params.workspace,
    modelDir: modelPath,
    cacheDir,
    mode: params.mode === 'full' ? 'full' : 'lora',
    rank: params.rank,
    lr: params.learningRate,
    minutes: positiveMinutes(params.minutes),
    maxSteps: positiveCount('maxSteps', params.maxSteps),
    maxFiles: positiveCount('maxFiles', params.maxFiles),
    executionProvider,
  });
}

export async function handleFineTune(params: FineTuneParams, token: CancellationToken, ctx: FineTuneContext): Promise<FineTuneSummary> {
  if (!ctx.modelPath) throw new ResponseError(LSPErrorCodes.RequestFailed, 'no model is configured to fine-tune');
  if (typeof params?.workspace !== 'string' || !params.workspace) throw new ResponseError(LSPErrorCodes.RequestFailed, 'fine-tuning needs a workspace folder');
  if (running) throw new ResponseError(LSPErrorCodes.RequestFailed, 'a fine-tune is already running');
  running = true;
  const built = fineTuneOptions(params, ctx.modelPath, ctx.cacheDir ?? defaultCacheDir(), ctx.executionProvider);
  const options = ctx.context === undefined ? built : { ...built, context: { ...built.context, sources: [...ctx.context.sources], maxTokens: ctx.context.maxTokens } };
  const run = startFineTuneProcess(options, (e) => ctx.progress(progressOf(e)));
  const detach = ctx.typing?.attach(run);
  const sub = token.onCancellationRequested(() => run.cancel());
  if (token.isCancellationRequested) run.cancel();
  try {
    const r = await run.result;
    ctx.progress({ state: r.cancelled ? 'cancelled' : 'done', step: r.steps, message: r.cancelled ? 'cancelled; the best result so far was kept' : 'done' });
    return {
      output: r.output,
      kind: options.mode.kind === 'lora' ? 'adapter' : 'model',
      cancelled: r.cancelled,
      endReason: r.endReason,
      steps: r.steps,
      bestStep: r.bestStep,
      trainSeconds: r.trainSeconds,
      runSeconds: r.runSeconds,
      trainFiles: r.dataset.files.filter((f) => f.split === 'train').length,
      validationFiles: r.dataset.files.filter((f) => f.split === 'validation').length,
      before: figures(r.before),
      after: figures(r.after),
      gain: r.gain,
    };
  } catch (err) {
    ctx.progress({ state: 'failed', message: (err as Error).message });
    throw new ResponseError(LSPErrorCodes.RequestFailed, `fine-tuning failed: ${(err as Error).message}`);
  } finally {
    detach?.();
    sub.dispose();
    running = false;
  }
}
