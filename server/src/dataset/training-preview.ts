// "Show what will be trained": the dataset a fine-tune would build for a workspace, as the dry-run
// report and (optionally) the dump of every example's decoded text. The CLI's `--dry-run [--dump]`
// and the language server's kiln/trainingDataPreview both run this, so they always agree.
import { availableParallelism } from 'node:os';
import { resolveFimTemplate } from '../model/fim';
import { Tokenizer } from '../model/tokenizer';
import { buildDataset, type Dataset, type DatasetReport } from './build-dataset';
import type { ExampleContextOptions } from './example-context';
import { formatDryRun, scanBoundsMessage } from './dry-run';
import { type DumpSummary, writeTrainingDump } from './dump';

export interface TrainingPreviewOptions {
  workspace: string;
  /** The model whose tokenizer and FIM template the examples are made with. */
  modelDir: string;
  seqLen: number;
  seed: number;
  fimRate: number;
  spmRate: number;
  lineSpanRate: number;
  /** Context blocks before a share of the examples, with the editor's sources and limit. */
  context: ExampleContextOptions;
  maxFiles: number;
  /** Tokenizing threads; 0 for one per core. */
  threads: number;
  /** Tokenize on workers whenever the text fills more than one batch, not only past the CLI's threshold (the language server: its thread answers completions). */
  offThread?: boolean;
  /** Where to write the dump; none when unset. */
  dumpPath?: string;
  signal?: AbortSignal;
  /** Progress and warnings for the user, one line each. */
  onLog?: (message: string) => void;
}

/** The dataset's own options, picked from any options object that has them (a fine-tune's). */
export type DatasetChoices = Pick<
  TrainingPreviewOptions,
  'workspace' | 'modelDir' | 'seqLen' | 'seed' | 'fimRate' | 'spmRate' | 'lineSpanRate' | 'context' | 'maxFiles' | 'threads'
>;
export function datasetChoices(o: DatasetChoices): DatasetChoices {
  const { workspace, modelDir, seqLen, seed, fimRate, spmRate, lineSpanRate, context, maxFiles, threads } = o;
  return { workspace, modelDir, seqLen, seed, fimRate, spmRate, lineSpanRate, context, maxFiles, threads };
}

export interface TrainingPreview {
  report: DatasetReport;
  /** formatDryRun(report). */
  text: string;
  dump?: DumpSummary;
}

/** What building a workspace's dataset needs beyond the choices: where it may tokenize, cancellation, the log. */
export interface DatasetRun {
  /** Tokenize on workers whenever the text fills more than one batch (the language server: its thread answers completions). */
  offThread?: boolean;
  /** Keep each example's tokens (for the dump). */
  keepExamples?: boolean;
  signal?: AbortSignal;
  onLog?: (message: string) => void;
}

/**
 * The dataset a fine-tune with these choices trains on (the model's tokenizer and FIM template),
 * with the scan's bounds and warnings logged: the one build the dry run, the preview and training share.
 */
export async function buildWorkspaceDataset(o: DatasetChoices & DatasetRun): Promise<{ dataset: Dataset; tokenizer: Tokenizer }> {
  const tokenizer = Tokenizer.load(o.modelDir);
  const fim = resolveFimTemplate(tokenizer);
  // the dataset phase comes before training: its tokenizing may use the threads training will
  const parallel = { tokenizerDir: o.modelDir, workers: o.threads > 0 ? o.threads : availableParallelism(), ...(o.offThread ? { minParallelChars: 0 } : {}) };
  const dataset = await buildDataset(o.workspace, tokenizer, fim, {
    seqLen: o.seqLen,
    seed: o.seed,
    fimRate: fim ? o.fimRate : 0,
    spmRate: o.spmRate,
    lineSpanRate: o.lineSpanRate,
    context: o.context,
    maxFiles: o.maxFiles,
    parallel,
    ...(o.keepExamples ? { keepExamples: true } : {}),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  const bounds = scanBoundsMessage(dataset.report);
  if (bounds) o.onLog?.(bounds);
  for (const w of dataset.report.warnings) o.onLog?.(w);
  return { dataset, tokenizer };
}

export async function previewTrainingData(o: TrainingPreviewOptions): Promise<TrainingPreview> {
  o.onLog?.(`reading ${o.workspace}`);
  const { dataset, tokenizer } = await buildWorkspaceDataset({ ...o, keepExamples: o.dumpPath !== undefined });
  const report = dataset.report;
  const preview: TrainingPreview = { report, text: formatDryRun(report) };
  if (o.dumpPath !== undefined) {
    const title = `Kiln training data for ${report.root} (model ${o.modelDir}, sequence ${o.seqLen} tokens, seed ${o.seed})`;
    preview.dump = await writeTrainingDump(o.dumpPath, dataset.examples ?? [], tokenizer, title);
    o.onLog?.(`wrote ${preview.dump.examples} examples (${preview.dump.bytes} bytes) to ${o.dumpPath}`);
  }
  return preview;
}
