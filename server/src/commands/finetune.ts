// `kiln finetune <workspace>`: adapt a model to a repository (LoRA or full-parameter) in a child
// process at lower priority, printing progress; ends with the measured before/after gain.
import { resolve } from 'node:path';
import { parseContextSources } from '../context/snippet';
import { defaultModelPath } from '../default-model';
import { exportDataset } from '../dataset/export-dataset';
import { datasetChoices, previewTrainingData } from '../dataset/training-preview';
import { defaultCacheDir } from '../model/graph/build-cache';
import { LORA_TARGETS, type LoraTarget } from '../model/graph/training-graph';
import type { QuantBits } from '../model/quantize';
import type { RecomputeChoice } from '../training/recompute-policy';
import { type FineTuneEvent, type FineTuneOptions, type FineTuneResult, runFineTune } from '../finetune/fine-tune';
import { exportChoices, exportSummary } from '../finetune/export-choices';
import { buildFineTuneOptions, DEFAULT_LORA, FINE_TUNE_DEFAULTS } from '../finetune/fine-tune-options';
import { startFineTuneProcess } from '../finetune/fine-tune-process';
import { parseCommandArgs, parseExecutionProvider, parseNonNegativeInt, UsageError, withUsage } from './cli-args';
import { formatReport } from './eval';

const USAGE = `usage: kiln finetune <workspace> [--model DIR] [--out DIR] [--mode lora|full] [--rank N] [--alpha N]
         [--targets q_proj,k_proj,v_proj,o_proj] [--lora-layers N] [--base-bits 8|4] [--recompute-layers auto|on|off] [--lr X] [--minutes M] [--steps N] [--epochs N] [--batch N] [--seq-len N]
         [--accumulation N] [--warmup N] [--eval-every N] [--patience N] [--eval-lines N] [--seed N]
         [--line-spans X] [--max-files N] [--threads N] [--ep cpu|webgpu|cuda|auto] [--cache DIR] [--no-resume] [--dry-run [--dump FILE]] [--json]
         [--in-process] [--context all|none|SOURCE,…] [--context-rate X] [--context-repos root|folders] [--export-dataset OUT [--overwrite]]
  --lora-layers: LoRA on the top N layers only; no backward pass runs below them (default: every layer)
  --base-bits: QLoRA: the frozen base's projections as int8 or int4 blocks (LoRA factors, norms and AdamW stay float32)
  --recompute-layers: recompute each layer's activations in the backward instead of keeping them (auto, the
             default: when those kept would pass 1 GiB and the step a quarter of the machine's memory;
             one more forward of each layer, ~20% of a real-size step's speed)
  --minutes: a time budget for the whole run, evaluations included: the steps are fitted to it after a
             short warm-up, and --steps / --epochs only cap them (unset, they do not)
  --dry-run: build the dataset and report it (files, tokens, exclusions, secret lines blanked per rule); no training
  --dump: with --dry-run, write the decoded text of every training and validation example to FILE
  --export-dataset: write the dataset training would use (scrubbed, FIM-transformed examples as JSONL
    plus manifest.json) to the folder OUT, for recipes/train_lora.py on another machine; no training.
    A non-empty OUT is refused unless --overwrite is given
  --max-files: files read from the workspace at most (default ${FINE_TUNE_DEFAULTS.maxFiles}; the rest are reported as left out)
  --line-spans: share of FIM examples whose middle is cut at line ends (0–1, default ${FINE_TUNE_DEFAULTS.lineSpanRate})
  --context: the context sources of the examples' blocks and of the before/after evaluation, as kiln.context.sources (default all; none: no context)
  --context-rate: share of documents whose examples start with a context block (0–1, default ${FINE_TUNE_DEFAULTS.context.rate})
  --context-repos: root (default): the workspace is one repository; folders: each top-level folder is a
    repository of its own (a corpus of packages), so an example's snippets come from its own folder only
  --alpha: LoRA alpha (default 2 × rank); --threads: training threads (default: up to 4, one core left for the editor)`;

const INT_FLAGS = [
  'rank',
  'alpha',
  'steps',
  'epochs',
  'batch',
  'seq-len',
  'accumulation',
  'warmup',
  'eval-every',
  'patience',
  'eval-lines',
  'seed',
  'threads',
  'max-files',
  'lora-layers',
] as const;

/** Flags left out return undefined: the builder fills them from its table. */
function positiveFloat(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (!(x > 0) || !Number.isFinite(x)) throw new UsageError(`--${name} must be a positive number, got "${value}"`);
  return x;
}

function fraction(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const x = Number(value);
  if (value.trim() === '' || !(x >= 0 && x <= 1)) throw new UsageError(`--${name} must be a number from 0 to 1, got "${value}"`);
  return x;
}

function recomputeChoice(value: string | undefined): RecomputeChoice | undefined {
  if (value === undefined) return undefined;
  if (value !== 'auto' && value !== 'on' && value !== 'off') throw new UsageError(`--recompute-layers must be auto, on or off, got "${value}"`);
  return value;
}

function baseBits(value: string | undefined): QuantBits | undefined {
  if (value === undefined) return undefined;
  if (value !== '8' && value !== '4') throw new UsageError(`--base-bits must be 8 or 4, got "${value}"`);
  return Number(value) as QuantBits;
}

/** The command line as fine-tune options (through the builder the editor's requests use too). */
export interface FinetuneArgs {
  options: FineTuneOptions;
  json: boolean;
  inProcess: boolean;
  dump: string | undefined;
  /** --export-dataset OUT, resolved. */
  exportTo: string | undefined;
  overwrite: boolean;
}

export function parseFinetuneArgs(args: string[]): FinetuneArgs {
  const stringFlags = Object.fromEntries(
    [
      ...INT_FLAGS,
      'model',
      'out',
      'mode',
      'targets',
      'lr',
      'cache',
      'ep',
      'minutes',
      'base-bits',
      'recompute-layers',
      'line-spans',
      'dump',
      'export-dataset',
      'context',
      'context-rate',
      'context-repos',
    ].map((f) => [f, { type: 'string' as const }]),
  );
  const { values, positionals } = parseCommandArgs(args, {
    ...stringFlags,
    'no-resume': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    'in-process': { type: 'boolean' },
    overwrite: { type: 'boolean' },
  });
  if (positionals.length !== 1) throw new UsageError('expected one workspace folder');
  const v = values as Record<string, string | boolean | undefined>;
  const str = (k: string) => v[k] as string | undefined;
  const int = (k: (typeof INT_FLAGS)[number], fallback: number) => parseNonNegativeInt(k, str(k), fallback);
  const modeName = str('mode') ?? 'lora';
  if (modeName !== 'lora' && modeName !== 'full') throw new UsageError(`--mode must be lora or full, got "${modeName}"`);
  const targets = (str('targets')
    ?.split(',')
    .map((t) => t.trim()) ?? DEFAULT_LORA.targets) as LoraTarget[];
  const unknown = targets.filter((t) => !LORA_TARGETS.includes(t));
  if (unknown.length) throw new UsageError(`unknown --targets ${unknown.join(', ')} (choose from ${LORA_TARGETS.join(', ')})`);
  const rank = int('rank', DEFAULT_LORA.rank);
  if (rank < 1) throw new UsageError('--rank must be at least 1');
  const modelDir = str('model') ?? defaultModelPath();
  if (!modelDir) throw new UsageError('no --model given and no embedded model under models/');
  const intOrUnset = (k: (typeof INT_FLAGS)[number], min: number) => (str(k) === undefined ? undefined : Math.max(min, int(k, 0)));
  const options = buildFineTuneOptions({
    workspace: positionals[0]!,
    modelDir,
    cacheDir: str('cache') ?? defaultCacheDir(),
    outDir: str('out'),
    mode: modeName,
    rank,
    alpha: intOrUnset('alpha', 0),
    targets,
    loraLayers: intOrUnset('lora-layers', 1),
    baseBits: baseBits(str('base-bits')),
    recomputeLayers: recomputeChoice(str('recompute-layers')),
    lr: positiveFloat('lr', str('lr')),
    minutes: positiveFloat('minutes', str('minutes')),
    maxSteps: intOrUnset('steps', 0),
    epochs: intOrUnset('epochs', 0),
    batchSize: intOrUnset('batch', 1),
    seqLen: intOrUnset('seq-len', 8),
    accumulation: intOrUnset('accumulation', 1),
    warmupSteps: intOrUnset('warmup', 0),
    evalEvery: intOrUnset('eval-every', 1),
    patience: intOrUnset('patience', 1),
    evalLines: intOrUnset('eval-lines', 0),
    seed: intOrUnset('seed', 0),
    lineSpanRate: fraction('line-spans', str('line-spans')),
    context: exampleContext(str('context'), fraction('context-rate', str('context-rate')), str('context-repos')),
    maxFiles: intOrUnset('max-files', 1),
    threads: intOrUnset('threads', 0),
    executionProvider: str('ep') === undefined ? undefined : parseExecutionProvider(str('ep')),
    resume: v['no-resume'] !== true,
    dryRun: v['dry-run'] === true,
  });
  const dump = str('dump');
  if (dump !== undefined && !options.dryRun) throw new UsageError('--dump needs --dry-run');
  if (dump !== undefined && dump.trim() === '') throw new UsageError('--dump needs a file name');
  const exportTo = str('export-dataset');
  if (exportTo !== undefined && exportTo.trim() === '') throw new UsageError('--export-dataset needs a folder name');
  if (exportTo !== undefined && options.dryRun) throw new UsageError('--export-dataset and --dry-run are two different runs: choose one');
  if (v.overwrite === true && exportTo === undefined) throw new UsageError('--overwrite needs --export-dataset');
  return {
    options,
    json: v.json === true,
    inProcess: v['in-process'] === true,
    dump: dump === undefined ? undefined : resolve(dump),
    exportTo: exportTo === undefined ? undefined : resolve(exportTo),
    overwrite: v.overwrite === true,
  };
}

/** The dry run: the same dataset build as training, reported (and dumped) without training. */
async function dryRun(options: FineTuneOptions, dump: string | undefined, json: boolean, out: (text: string) => void): Promise<number> {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort(new Error('interrupted')));
  const preview = await previewTrainingData({
    ...datasetChoices(options),
    signal: abort.signal,
    onLog: (message) => process.stderr.write(`${message}\n`),
    ...(dump === undefined ? {} : { dumpPath: dump }),
  });
  if (json) out(JSON.stringify({ dataset: preview.report, ...(preview.dump ? { dump: preview.dump } : {}) }));
  else out(preview.text);
  return 0;
}

/** --export-dataset: the same dataset build as training, written for a trainer elsewhere. */
async function exportForCluster(options: FineTuneOptions, o: { out: string; overwrite: boolean; json: boolean }, out: (text: string) => void): Promise<number> {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort(new Error('interrupted')));
  const result = await exportDataset({
    ...datasetChoices(options),
    ...exportChoices(options),
    out: o.out,
    overwrite: o.overwrite,
    signal: abort.signal,
    onLog: (message) => process.stderr.write(`${message}\n`),
  });
  if (o.json) out(JSON.stringify(result));
  else out(exportSummary(result));
  return 0;
}

function describe(e: FineTuneEvent): string {
  switch (e.type) {
    case 'phase':
    case 'log':
      return e.message;
    case 'step':
      return `step ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ${e.tokensPerSecond.toFixed(0)} tok/s  eta ${Math.round(e.etaSeconds)} s`;
    case 'validation':
      return `validation loss ${e.loss.toFixed(4)} at step ${e.step}${e.best ? ' (best)' : ''}`;
  }
}

const signed = (x: number, digits: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(digits)}` : 'n/a');
/** A fraction's 95% interval in points, e.g. `[+0.9, +3.5]`. */
const pointsInterval = (d: { low: number; high: number }) => `[${signed(100 * d.low, 1)}, ${signed(100 * d.high, 1)}]`;

/** The run as the CLI prints it without --json. */
export function fineTuneSummary(r: FineTuneResult): string {
  const lines = [
    `steps ${r.steps} (best ${r.bestStep}), ${r.tokensSeen} tokens in ${r.trainSeconds.toFixed(1)} s${r.cancelled ? ', cancelled' : ''}${r.stoppedEarly ? ', stopped early' : ''}${r.endReason === 'time' ? ', time budget spent' : ''}`,
  ];
  if (r.budget) {
    const batch = r.sizes ? ` of ${r.sizes.batchSize} sequence${r.sizes.batchSize === 1 ? '' : 's'}` : '';
    lines.push(
      `time budget ${r.budget.minutes} min: ${r.schedule?.totalSteps} steps${batch} planned at ${r.budget.secondsPerStep.toFixed(3)} s a step; the whole run took ${(r.runSeconds / 60).toFixed(1)} min`,
    );
  }
  if (r.output) lines.push(`saved ${r.output}`);
  if (r.before) lines.push('before:', formatReport(r.before));
  if (r.after) lines.push('after:', formatReport(r.after));
  if (r.before && r.after) {
    const loss = `validation loss ${signed(r.after.validationLoss - r.before.validationLoss, 4)}`;
    if (r.after.lines === 0) lines.push(`gain: ${loss} (no lines scored)`);
    else {
      const em = r.gain ? ` ${pointsInterval(r.gain.exactMatch)}` : '';
      const es = r.gain ? `, edit similarity ${signed(r.gain.editSimilarity.mean, 3)} [${signed(r.gain.editSimilarity.low, 3)}, ${signed(r.gain.editSimilarity.high, 3)}]` : '';
      lines.push(`gain on ${r.after.lines} paired lines: exact match ${signed(100 * (r.after.exactMatch - r.before.exactMatch), 1)} points${em}${es}, ${loss}`);
    }
  }
  return lines.join('\n');
}

export async function runFinetuneCommand(args: string[], out: (text: string) => void): Promise<number> {
  const { options, json, inProcess, dump, exportTo, overwrite } = withUsage(USAGE, () => parseFinetuneArgs(args));
  if (options.dryRun) return dryRun(options, dump, json, out);
  if (exportTo !== undefined) return exportForCluster(options, { out: exportTo, overwrite, json }, out);
  const onEvent = (e: FineTuneEvent) => process.stderr.write(`${describe(e)}\n`);
  let result: FineTuneResult;
  if (inProcess) {
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort(new Error('interrupted')));
    result = await runFineTune(options, onEvent, abort.signal);
  } else {
    const run = startFineTuneProcess(options, onEvent);
    process.once('SIGINT', () => run.cancel()); // Ctrl-C: stop within a step, keep the best
    result = await run.result;
  }
  if (json) out(JSON.stringify(result));
  else out(fineTuneSummary(result));
  return 0;
}

/** The examples' context from --context, --context-rate and --context-repos over the defaults. */
function exampleContext(spec: string | undefined, rate: number | undefined, repos: string | undefined): FineTuneOptions['context'] | undefined {
  if (spec === undefined && rate === undefined && repos === undefined) return undefined;
  if (repos !== undefined && repos !== 'root' && repos !== 'folders') throw new UsageError(`--context-repos must be root or folders, got ${repos}`);
  let sources = FINE_TUNE_DEFAULTS.context.sources;
  try {
    if (spec !== undefined) sources = parseContextSources(spec);
  } catch (err) {
    throw new UsageError(`--context: ${(err as Error).message}`);
  }
  return { ...FINE_TUNE_DEFAULTS.context, sources, ...(rate === undefined ? {} : { rate }), ...(repos === undefined ? {} : { repositories: repos }) };
}
