// The workspace dataset for fine-tuning: scan → read (secrets never opened, secret lines blanked) →
// content filters → dedupe → hold out whole files → tokenize → FIM → pack. Deterministic for a seed.
import type { FimTemplate } from '../model/fim';
import { dedupeByContent } from './dedupe';
import { type ExampleContextOptions, planExampleContexts } from './example-context';
import { countByReason, type ExcludedFile, type ExclusionReason } from './exclusions';
import type { Example, ExampleContext, ExampleKind, ExampleTokenizer, FimLoss } from './fim-transform';
import { packExamples, type PackedSequence } from './pack';
import { readSources } from './read-sources';
import { SCAN_DEFAULTS, scanWorkspace, type ScanOptions } from './scan';
import type { SecretKind } from './secrets';
import { splitByPath } from './split';
import { type ParallelTokenizing, tokenizeDocuments } from './tokenize-pool';

export interface DatasetOptions extends ScanOptions {
  /** Tokens per packed sequence. */
  seqLen: number;
  /** Seeds FIM draws and packing order (default 0); the hold-out does not depend on it. */
  seed?: number;
  /** Share of FIM examples (default 0.9); 0 for plain left-to-right only. */
  fimRate?: number;
  /** Share of FIM examples in SPM order (default 0.5). */
  spmRate?: number;
  /** Share of FIM examples whose middle is cut at line ends (default 0.5); see fimLineSplit. */
  lineSpanRate?: number;
  /** Which tokens are targets (default 'all'); see FimLoss. */
  fimLoss?: FimLoss;
  /** Share of files held out for validation (default 0.1). */
  validationFraction?: number;
  /** Tokenize on worker threads (each loads the tokenizer from this folder); the dataset is the same either way. */
  parallel?: ParallelTokenizing;
  /** Reads a file by absolute path instead of the checked reader (a test spy). Never called for excluded paths. */
  readFile?: (absPath: string) => Promise<Uint8Array>;
  /** Context blocks before a share of the documents' examples, as the editor builds them (default none). */
  context?: ExampleContextOptions;
  /** Keep every example, in file order, for a dump of what the model would see (costs memory). */
  keepExamples?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: { phase: 'read' | 'tokenize'; done: number; total: number }) => void;
}

/** One training or validation example as it enters packing, with where it came from. */
export interface DatasetExample extends Example {
  split: 'train' | 'validation';
  path: string;
  /** Which piece of its file (a long file is cut at line ends into several). */
  piece: number;
  pieces: number;
}

export interface DatasetFile {
  path: string;
  bytes: number;
  /** Tokens of the (scrubbed) text, before FIM markers and end tokens. */
  tokens: number;
  split: 'train' | 'validation';
  scrubbedLines: number;
}

export interface DatasetReport {
  root: string;
  mode: 'git' | 'walk';
  /** True when a scan bound left files out ('limit' entries, or a listing cut short). */
  truncated: boolean;
  /** How the scan went, for the user (e.g. git timed out and the folder was walked). */
  warnings: string[];
  seqLen: number;
  seed: number;
  fimRate: number;
  spmRate: number;
  lineSpanRate: number;
  fimLoss: FimLoss;
  validationFraction: number;
  /** Sorted by path. */
  files: DatasetFile[];
  /** Sorted by path. */
  excluded: ExcludedFile[];
  excludedByReason: Record<ExclusionReason, number>;
  scrubbedLines: number;
  scrubbedByKind: Partial<Record<SecretKind, number>>;
  examples: Record<ExampleKind, number>;
  /** Documents whose examples start with a context block, and the mean tokens of their blocks. */
  context: { documents: number; meanTokens: number };
  tokens: { train: number; validation: number };
  sequences: { train: number; validation: number };
  /** Over train and validation sequences. */
  paddingTokens: number;
  targetTokens: number;
}

export interface Dataset {
  train: PackedSequence[];
  validation: PackedSequence[];
  /** Held-out files (scrubbed text), for next-line exact match. */
  validationFiles: { path: string; text: string }[];
  /** With `keepExamples`: every example, files in path order, pieces in order. */
  examples?: DatasetExample[];
  report: DatasetReport;
}

function contextSummary(blocks: readonly number[]): { documents: number; meanTokens: number } {
  const used = blocks.filter((n) => n > 0);
  return { documents: used.length, meanTokens: used.length === 0 ? 0 : used.reduce((a, n) => a + n, 0) / used.length };
}

/** The token that ends every example. */
export function endTokenId(tokenizer: ExampleTokenizer, template: FimTemplate | undefined): number {
  const id = tokenizer.eosId ?? template?.stopIds[0];
  if (id === undefined) throw new Error('the tokenizer has no end-of-text token to end training examples with');
  return id;
}

export async function buildDataset(root: string, tokenizer: ExampleTokenizer, template: FimTemplate | undefined, options: DatasetOptions): Promise<Dataset> {
  const seed = options.seed ?? 0;
  const fimRate = options.fimRate ?? 0.9;
  const spmRate = options.spmRate ?? 0.5;
  const lineSpanRate = options.lineSpanRate ?? 0.5;
  const fimLoss = options.fimLoss ?? 'all';
  const validationFraction = options.validationFraction ?? 0.1;
  const maxFileBytes = options.maxFileBytes ?? SCAN_DEFAULTS.maxFileBytes;
  for (const [name, rate] of [
    ['fimRate', fimRate],
    ['spmRate', spmRate],
    ['lineSpanRate', lineSpanRate],
  ] as const) {
    if (!(rate >= 0 && rate <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${rate}`);
  }

  const scan = await scanWorkspace(root, options);
  const read = await readSources(scan.root, scan.files, {
    maxFileBytes,
    ...(options.readFile === undefined ? {} : { readFile: options.readFile }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    onProgress: (done, total) => options.onProgress?.({ phase: 'read', done, total }),
  });
  const deduped = dedupeByContent(read.sources);
  const split = splitByPath(deduped.kept, validationFraction);
  const heldOut = new Set(split.validation);

  const ctx: ExampleContext = { tokenizer, template, endId: endTokenId(tokenizer, template), options: { fimRate, spmRate, lineSpanRate, loss: fimLoss } };
  const examples = { train: [] as Example[], validation: [] as Example[] };
  const kinds: Record<ExampleKind, number> = { plain: 0, psm: 0, spm: 0 };
  const tokens = { train: 0, validation: 0 };
  const files: DatasetFile[] = [];
  const kept: DatasetExample[] | undefined = options.keepExamples ? [] : undefined;
  const total = deduped.kept.length;
  const plan =
    options.context === undefined
      ? undefined
      : planExampleContexts(deduped.kept, options.context, { root: scan.root, seqLen: options.seqLen, seed, heldOut: new Set(split.validation.map((f) => f.path)) });
  const withContext = deduped.kept.map((source, i) => {
    const repository = plan?.repositoryOf[i];
    return repository === undefined ? source : { ...source, repository };
  });
  const documents = await tokenizeDocuments(withContext, ctx, {
    seqLen: options.seqLen,
    seed,
    parallel: options.parallel,
    ...(plan === undefined ? {} : { repositories: plan.repositories }),
    signal: options.signal,
    onProgress: (done) => options.onProgress?.({ phase: 'tokenize', done, total }),
  });
  for (const [i, source] of deduped.kept.entries()) {
    const which = heldOut.has(source) ? 'validation' : 'train';
    const doc = documents[i]!;
    for (const e of doc.examples) kinds[e.kind]++;
    examples[which].push(...doc.examples);
    for (const [piece, e] of doc.examples.entries()) kept?.push({ ...e, split: which, path: source.path, piece, pieces: doc.examples.length });
    tokens[which] += doc.tokens;
    files.push({ path: source.path, bytes: source.bytes, tokens: doc.tokens, split: which, scrubbedLines: source.scrubbedLines });
  }
  options.onProgress?.({ phase: 'tokenize', done: total, total });

  const padId = template?.padId ?? ctx.endId;
  const train = packExamples(examples.train, { seqLen: options.seqLen, padId, seed, key: 'train' });
  const validation = packExamples(examples.validation, { seqLen: options.seqLen, padId, seed, key: 'validation' });
  const excluded = [...scan.excluded, ...read.excluded, ...deduped.duplicates.map(({ item, of }) => ({ path: item.path, reason: 'duplicate' as const, detail: `same as ${of}` }))];
  excluded.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const report: DatasetReport = {
    root: scan.root,
    mode: scan.mode,
    truncated: scan.truncated,
    warnings: scan.warnings,
    seqLen: options.seqLen,
    seed,
    fimRate,
    spmRate,
    lineSpanRate,
    fimLoss,
    validationFraction,
    files,
    excluded,
    excludedByReason: countByReason(excluded),
    scrubbedLines: read.scrubbedLines,
    scrubbedByKind: read.scrubbedByKind,
    examples: kinds,
    context: contextSummary(documents.map((d) => d.contextTokens)),
    tokens,
    sequences: { train: train.sequences.length, validation: validation.sequences.length },
    paddingTokens: train.paddingTokens + validation.paddingTokens,
    targetTokens: train.targetTokens + validation.targetTokens,
  };
  return {
    train: train.sequences,
    validation: validation.sequences,
    validationFiles: split.validation.map((s) => ({ path: s.path, text: s.text })),
    ...(kept === undefined ? {} : { examples: kept }),
    report,
  };
}
