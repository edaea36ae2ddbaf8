// `kiln eval <dir>`: validation loss and next-line exact match / edit similarity on the source files
// under a folder, with the same engine the server completes with.
import { loadCompletionModel } from '../completion/completion-model';
import { defaultModelPath } from '../default-model';
import { automaticThreads } from '../runtime/threads';
import { encodeDocuments, type ParallelTokenizing } from '../dataset/tokenize-pool';
import { collectEvalFiles } from '../evaluation/eval-files';
import { NgramModel, previousLinePrediction } from '../evaluation/baselines';
import { type EvalContext, type EvalFile, type EvalOptions, type EvalReport, evaluateModelPerLine, type LineScore, sampleLines, scoreLines } from '../evaluation/evaluate';
import { type Difference, type PairedDifference, pairedDifference } from '../evaluation/paired-difference';
import type { CompletionModel } from '../completion/completion-model';
import { CONTEXT_SOURCES, type ContextSourceName, parseContextSources } from '../context/snippet';
import { contextComparisons, type ContextComparisons, formatContextComparisons, workspaceEvalContext } from './eval-context';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, parseNonNegativeInt, parseQuantization, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln eval <dir> [--model DIR] [--adapter DIR] [--json] [--max-lines N] [--max-files N] [--seed N] [--loss-window N] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--quantization auto|none|int8|int4] [--baselines TRAIN_DIR] [--compare MODEL_DIR] [--workspace ROOT [--context all|none|SOURCE,…] [--compare-context all|none|SOURCE,…] [--context-tokens N]]\n' +
  '       [--max-prefix-tokens N] [--max-suffix-tokens N] [--fim-order auto|psm|spm] [--psm-typed-middle on|off]\n' +
  '  evaluates on the source files under <dir>: next-token loss, and next-line exact match and edit similarity;\n' +
  '  --baselines scores "repeat the previous line" and a token 3-gram trained on TRAIN_DIR on the same lines,\n' +
  "  with the model's per-line difference to each (mean and 95% interval);\n" +
  '  --workspace scores with the context block the editor would build from the rest of the workspace ROOT (never from the scored file or its\n' +
  '  near-duplicates), on the same lines as without it, with the paired difference and each source switched off in turn (sources: imports, edits, viewed, similar);\n' +
  '  --compare-context scores the --compare model with other context sources (none: without context), still paired on the same lines;\n' +
  '  --context-tokens N sets kiln.context.maxTokens for the run (default 512; a short-context model gets less);\n' +
  '  --loss-window sets the validation loss window in tokens (default 512);\n' +
  '  --compare scores a second model (e.g. the previous version) the same way on the same lines, with the same difference;\n' +
  '  --adapter merges a PEFT LoRA adapter folder (what a LoRA fine-tune writes) into the model first;\n' +
  '  the prompt flags score other windows and layouts than the defaults (e.g. the shorter window a slow prefill answers from)';

function parse(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    ...MODEL_OPTIONS,
    model: { type: 'string' },
    adapter: { type: 'string' },
    'max-lines': { type: 'string' },
    'max-files': { type: 'string' },
    seed: { type: 'string' },
    'loss-window': { type: 'string' },
    workspace: { type: 'string' },
    context: { type: 'string' },
    baselines: { type: 'string' },
    compare: { type: 'string' },
    'compare-context': { type: 'string' },
    'context-tokens': { type: 'string' },
    'max-prefix-tokens': { type: 'string' },
    'max-suffix-tokens': { type: 'string' },
    'fim-order': { type: 'string' },
    'psm-typed-middle': { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('expected one folder of source files');
  const model = values.model ?? defaultModelPath();
  if (!model) throw new UsageError('no --model given and no embedded model under models/');
  const context = parseNonNegativeInt('loss-window', values['loss-window'], 512);
  if (context < 2) throw new UsageError('--loss-window must be at least 2 tokens');
  if (values.context !== undefined && values.workspace === undefined) throw new UsageError('--context needs --workspace (the files context is drawn from)');
  if (values['context-tokens'] !== undefined && values.workspace === undefined) throw new UsageError('--context-tokens needs --workspace');
  if (values['compare-context'] !== undefined && (values.workspace === undefined || values.compare === undefined))
    throw new UsageError('--compare-context needs --compare and --workspace');
  let compareSources: ContextSourceName[] | undefined;
  try {
    if (values['compare-context'] !== undefined) compareSources = parseContextSources(values['compare-context']);
  } catch (err) {
    throw new UsageError(`--compare-context: ${(err as Error).message}`);
  }
  let sources: ContextSourceName[] = [...CONTEXT_SOURCES];
  try {
    if (values.context !== undefined) sources = parseContextSources(values.context);
  } catch (err) {
    throw new UsageError(`--context: ${(err as Error).message}${/^\d+$/.test(values.context ?? '') ? ' (the loss window is --loss-window N)' : ''}`);
  }
  return {
    dir: positionals[0]!,
    model,
    json: values.json === true,
    maxLines: parseNonNegativeInt('max-lines', values['max-lines'], 200),
    maxFiles: parseNonNegativeInt('max-files', values['max-files'], 200),
    seed: parseNonNegativeInt('seed', values.seed, 0),
    lossWindow: context,
    baselinesFrom: values.baselines,
    compareWith: values.compare,
    compareSources,
    contextTokens: values['context-tokens'] === undefined ? undefined : parseNonNegativeInt('context-tokens', values['context-tokens'], 0),
    workspace: values.workspace,
    sources,
    runtime: { ...parseModelOptions(values), adapterDir: values.adapter },
    quantization: parseQuantization(values.quantization),
    ...parsePromptFlags(values),
  };
}

/** The prompt overrides: windows, the FIM order, PSM's typed middle. */
function parsePromptFlags(values: Record<string, string | boolean | undefined>) {
  const str = (name: string) => values[name] as string | undefined;
  const order = str('fim-order') ?? 'auto';
  if (order !== 'auto' && order !== 'psm' && order !== 'spm') throw new UsageError(`--fim-order must be auto, psm or spm, got ${order}`);
  const middle = str('psm-typed-middle');
  if (middle !== undefined && middle !== 'on' && middle !== 'off') throw new UsageError(`--psm-typed-middle must be on or off, got ${middle}`);
  const prompt: NonNullable<EvalOptions['prompt']> = {};
  if (str('max-prefix-tokens') !== undefined) prompt.maxPrefixTokens = Math.max(16, parseNonNegativeInt('max-prefix-tokens', str('max-prefix-tokens'), 0));
  if (str('max-suffix-tokens') !== undefined) prompt.maxSuffixTokens = parseNonNegativeInt('max-suffix-tokens', str('max-suffix-tokens'), 0);
  if (middle !== undefined) prompt.psmTypedMiddle = middle === 'on';
  return { fimOrder: order as 'auto' | 'psm' | 'spm', prompt };
}

const percent = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
const fixed = (x: number, digits: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(digits));

/** The report as a short table. */
export function formatReport(report: EvalReport): string {
  return [
    `files            ${report.files}`,
    `lines            ${report.lines}`,
    `exact match      ${percent(report.exactMatch)}`,
    `edit similarity  ${fixed(report.editSimilarity, 3)}`,
    `validation loss  ${fixed(report.validationLoss, 4)} nats/token over ${report.tokens} tokens`,
  ].join('\n');
}

export async function runEval(args: string[], out: (text: string) => void): Promise<number> {
  const parsed = withUsage(USAGE, () => parse(args));
  const files = collectEvalFiles(parsed.dir, { maxFiles: parsed.maxFiles });
  if (files.length === 0) throw new Error(`no source files to evaluate under ${parsed.dir}`);
  const threads = parsed.runtime.threads || automaticThreads();
  const workspace =
    parsed.workspace === undefined
      ? undefined
      : await workspaceEvalContext({
          root: parsed.workspace,
          dir: parsed.dir,
          files,
          sources: parsed.sources,
          ...(parsed.contextTokens === undefined ? {} : { maxTokens: parsed.contextTokens }),
        });
  const model = await loadCompletionModel(parsed.model, { fimOrder: parsed.fimOrder, quantization: parsed.quantization }, { ...parsed.runtime, threads });
  const options = {
    maxLines: parsed.maxLines,
    seed: parsed.seed,
    contextTokens: parsed.lossWindow,
    prompt: parsed.prompt,
    ...(workspace === undefined ? {} : { context: workspace.context }),
  };
  let measured: { report: EvalReport; perLine: LineScore[] };
  let baselines: BaselineScores | undefined;
  let comparisons: ContextComparisons | undefined;
  try {
    const run = await evaluateModelPerLine(model, files, options);
    measured = run;
    if (workspace !== undefined) comparisons = await contextComparisons(model, files, { options, measured: run });
    if (parsed.baselinesFrom)
      baselines = await scoreBaselines(
        model,
        { files, options, modelLines: measured.perLine },
        { trainDir: parsed.baselinesFrom, parallel: { tokenizerDir: parsed.model, workers: threads } },
      );
  } finally {
    workspace?.dispose();
    await model.loaded.session.release();
  }
  const { report, perLine } = measured;
  // loaded after the first is released: two models' memory is never held at once
  // --compare-context: the compared model draws context from other sources (none: e.g. a fine-tune with context against the base without)
  const compareContext = options.context === undefined || parsed.compareSources === undefined ? options.context : { ...options.context, sources: parsed.compareSources };
  const { context: _, ...withoutContext } = options;
  const compareOptions = compareContext === undefined || compareContext.sources.length === 0 ? withoutContext : { ...options, context: compareContext };
  const scored = { files, options: compareOptions, modelLines: perLine };
  const compared =
    parsed.compareWith === undefined
      ? undefined
      : await compareWith(scored, { dir: parsed.compareWith, runtime: { ...parsed.runtime, adapterDir: undefined, threads }, quantization: parsed.quantization });
  if (parsed.json) out(JSON.stringify({ ...report, ...(comparisons ? { context: comparisons } : {}), ...(baselines ? { baselines } : {}), ...(compared ? { compared } : {}) }));
  else
    out(
      [
        formatReport(report),
        ...(comparisons ? [formatContextComparisons(comparisons)] : []),
        ...(baselines ? [formatBaselines(report, baselines)] : []),
        ...(compared ? [formatCompared(report, compared)] : []),
      ].join('\n'),
    );
  return 0;
}

interface BaselineScore {
  exactMatch: number;
  editSimilarity: number;
  /** The model's score minus this baseline's, line by line, with 95% intervals. */
  modelMinusBaseline: PairedDifference;
}

interface BaselineScores {
  previousLine: BaselineScore;
  ngram: BaselineScore & { order: number; trainTokens: number };
}

/** This run's model as scored: the files, how lines were sampled, and the score of every line. */
interface ScoredRun {
  files: EvalFile[];
  options: { maxLines: number; seed: number; contextTokens: number; prompt: NonNullable<EvalOptions['prompt']>; context?: EvalContext };
  modelLines: LineScore[];
}

/** Both baselines on exactly the lines the model was scored on (same sampling, same seed). */
async function scoreBaselines(
  model: CompletionModel,
  { files, options: o, modelLines }: ScoredRun,
  training: { trainDir: string; parallel: ParallelTokenizing },
): Promise<BaselineScores> {
  const lines = sampleLines(files, o.maxLines, o.seed);
  const previous = await scoreLines(files, lines, async (task) => previousLinePrediction(task.text, task.offset));
  const trainFiles = collectEvalFiles(training.trainDir, { maxFiles: 100_000 });
  const sequences = await encodeDocuments(trainFiles, model.tokenizer, { parallel: training.parallel });
  const ngram = NgramModel.train(sequences, model.loaded.config.vocabSize, 3);
  const stops = new Set(model.fim.stopIds);
  const scored = await scoreLines(files, lines, async (task) => ngram.completeLine(model.tokenizer, task.text.slice(0, task.offset), stops));
  const score = (s: { exactMatch: number; editSimilarity: number; perLine: LineScore[] }) => ({
    exactMatch: s.exactMatch,
    editSimilarity: s.editSimilarity,
    modelMinusBaseline: pairedDifference(modelLines, s.perLine),
  });
  return {
    previousLine: score(previous),
    ngram: { ...score(scored), order: 3, trainTokens: sequences.reduce((a, s) => a + s.length, 0) },
  };
}

interface ComparedModel {
  model: string;
  report: EvalReport;
  /** This run's model minus the compared one, line by line, with 95% intervals. */
  modelMinusCompared: PairedDifference;
}

/** A second model on the same files and lines, with the same engine settings. */
async function compareWith(
  { files, options, modelLines }: ScoredRun,
  other: { dir: string; runtime: Parameters<typeof loadCompletionModel>[2]; quantization: ReturnType<typeof parseQuantization> },
): Promise<ComparedModel> {
  const { dir, runtime, quantization } = other;
  const model = await loadCompletionModel(dir, { fimOrder: 'auto', quantization }, runtime);
  try {
    const { report, perLine } = await evaluateModelPerLine(model, files, options);
    return { model: dir, report, modelMinusCompared: pairedDifference(modelLines, perLine) };
  } finally {
    await model.loaded.session.release();
  }
}

const signed = (x: number, digits: number) => (Number.isNaN(x) ? 'n/a' : `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`);
const interval = (d: Difference, scale: number, digits: number) => `${signed(scale * d.mean, digits)} [${signed(scale * d.low, digits)}, ${signed(scale * d.high, digits)}]`;

function formatCompared(model: EvalReport, c: ComparedModel): string {
  const d = c.modelMinusCompared;
  return [
    `compared with ${c.model}: exact ${percent(c.report.exactMatch)}, edit sim ${fixed(c.report.editSimilarity, 3)}, validation loss ${fixed(c.report.validationLoss, 4)}`,
    `model minus compared, same lines (mean [95% interval]): exact ${interval(d.exactMatch, 100, 1)} points, edit sim ${interval(d.editSimilarity, 1, 3)}, loss ${signed(model.validationLoss - c.report.validationLoss, 4)}`,
  ].join('\n');
}

function formatBaselines(model: EvalReport, b: BaselineScores): string {
  const ngramName = `token 3-gram (${(b.ngram.trainTokens / 1e6).toFixed(1)}M tok)`;
  const row = (name: string, x: { exactMatch: number; editSimilarity: number }) =>
    `${name.padEnd(28)} ${percent(x.exactMatch).padStart(8)}  ${fixed(x.editSimilarity, 3).padStart(8)}`;
  const gap = (name: string, x: BaselineScore) =>
    `${name.padEnd(28)} exact ${interval(x.modelMinusBaseline.exactMatch, 100, 1)} points, edit sim ${interval(x.modelMinusBaseline.editSimilarity, 1, 3)}`;
  return [
    `${''.padEnd(28)} ${'exact'.padStart(8)}  ${'edit sim'.padStart(8)}`,
    row('model', model),
    row('previous line', b.previousLine),
    row(ngramName, b.ngram),
    'model minus baseline, same lines (mean [95% interval]):',
    gap('  previous line', b.previousLine),
    gap('  token 3-gram', b.ngram),
  ].join('\n');
}
