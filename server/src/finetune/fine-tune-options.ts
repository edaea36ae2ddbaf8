// The one builder of a fine-tune's options, for `kiln finetune` and for the editor's kiln/fineTune
// and kiln/trainingDataPreview: the user's choices in, every unset field from the table below.
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { DEFAULT_COMPLETION_SETTINGS } from '../completion/completion-settings';
import { CONTEXT_SOURCES } from '../context/snippet';
import { SCAN_DEFAULTS } from '../dataset/scan';
import type { LoraTarget, TrainingMode } from '../model/graph/training-graph';
import type { QuantBits } from '../model/quantize';
import { automaticThreads } from '../runtime/threads';
import type { FineTuneOptions } from './fine-tune';

/** LoRA as the command palette and the CLI run it unless told otherwise. */
export const DEFAULT_LORA: Extract<TrainingMode, { kind: 'lora' }> = { kind: 'lora', rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] };

/** Full-parameter training's learning rate: every weight moves, so it steps smaller than LoRA. */
export const FULL_PARAMETER_LR = 3e-4;

/** The defaults of every choice; threads 0 means automatic (see trainingThreads). */
export const FINE_TUNE_DEFAULTS: Omit<FineTuneOptions, 'workspace' | 'modelDir' | 'outDir' | 'cacheDir'> = {
  mode: DEFAULT_LORA,
  lr: 1e-3,
  minutes: 0,
  maxSteps: 200,
  epochs: 3,
  batchSize: 4,
  seqLen: 256,
  accumulation: 1,
  warmupSteps: 10,
  evalEvery: 25,
  patience: 3,
  checkpointEvery: 25,
  executionProvider: 'cpu',
  recomputeLayers: 'auto',
  threads: 0,
  seed: 0,
  evalLines: 100,
  fimRate: 0.9,
  spmRate: 0.5,
  lineSpanRate: 0.5,
  context: { sources: [...CONTEXT_SOURCES], maxTokens: DEFAULT_COMPLETION_SETTINGS['context.maxTokens'], rate: 0.5 },
  maxFiles: SCAN_DEFAULTS.maxFiles,
  resume: true,
  dryRun: false,
};

/**
 * Caps a time budget leaves when the user sets none: the budget decides how long training runs,
 * and early stopping on validation loss ends a run that starts to overfit.
 */
export const BUDGET_CAPS = { maxSteps: 100_000, epochs: 100 };

type Tunable = Omit<FineTuneOptions, 'workspace' | 'modelDir' | 'cacheDir' | 'outDir' | 'mode'>;

/** What the user chose; anything left unset (or undefined) takes its default. */
export interface FineTuneChoices extends Partial<Tunable> {
  workspace: string;
  modelDir: string;
  cacheDir: string;
  /** Default: a folder under `cacheDir/runs/` named for the workspace, the model and the mode. */
  outDir?: string;
  mode?: 'lora' | 'full';
  rank?: number;
  /** Default: 2 × rank. */
  alpha?: number;
  targets?: readonly LoraTarget[];
  /** LoRA on the top this-many layers only (no backward below them); default all. */
  loraLayers?: number;
  /** QLoRA: the frozen base projections as int8 or int4 blocks; default float32. */
  baseBits?: QuantBits;
}

/**
 * Training threads when the user leaves them to Kiln: the automatic count less one, because the
 * editor and the language server keep answering completions on the same machine while training runs.
 */
export function trainingThreads(): number {
  return Math.max(1, automaticThreads() - 1);
}

/** The run folder of a workspace, model and mode: the same choices resume the same run. */
function defaultOutDir(cacheDir: string, workspace: string, modelDir: string, mode: 'lora' | 'full'): string {
  const key = createHash('sha256')
    .update(`${workspace}\0${resolve(modelDir)}\0${mode}`)
    .digest('hex')
    .slice(0, 16);
  return join(cacheDir, 'runs', key);
}

export function buildFineTuneOptions(choices: FineTuneChoices): FineTuneOptions {
  const {
    workspace: chosenWorkspace,
    modelDir,
    cacheDir,
    outDir,
    mode: modeName = 'lora',
    rank = DEFAULT_LORA.rank,
    alpha,
    targets = DEFAULT_LORA.targets,
    loraLayers,
    baseBits,
    ...tunable
  } = choices;
  const chosen = Object.fromEntries(Object.entries(tunable).filter(([, value]) => value !== undefined)) as Partial<Tunable>;
  const workspace = resolve(chosenWorkspace);
  // alpha = 2 × rank keeps LoRA's scale (alpha / rank) at 2 for every rank, so one learning rate fits them all
  const lora = {
    kind: 'lora',
    rank,
    alpha: alpha ?? 2 * rank,
    targets,
    ...(loraLayers === undefined ? {} : { layers: loraLayers }),
    ...(baseBits === undefined ? {} : { baseBits }),
  } as const;
  const mode: TrainingMode = modeName === 'full' ? { kind: 'full' } : lora;
  return {
    ...FINE_TUNE_DEFAULTS,
    lr: modeName === 'full' ? FULL_PARAMETER_LR : FINE_TUNE_DEFAULTS.lr,
    // a checkpoint as often as validation runs, unless chosen apart
    checkpointEvery: chosen.evalEvery ?? FINE_TUNE_DEFAULTS.checkpointEvery,
    ...(chosen.minutes ? BUDGET_CAPS : {}),
    ...chosen,
    threads: chosen.threads || trainingThreads(),
    workspace,
    modelDir,
    cacheDir,
    outDir: outDir ?? defaultOutDir(cacheDir, workspace, modelDir, modeName),
    mode,
  };
}
