// `kiln finetune <dir> --export-dataset OUT`: the dataset a fine-tune would train on, for training
// elsewhere (recipes/train_lora.py under torchrun on a cluster). The same build as the fine-tune
// (buildWorkspaceDataset: scan, secrets blanked, FIM in the model's template), written as
//
//   OUT/train.jsonl        one example per line: split, path, piece, kind, input_ids, loss_mask, text
//   OUT/validation.jsonl   the held-out files' examples, same shape
//   OUT/manifest.json      tokenizer, FIM template, rates, split, sequence length, file counts,
//                          Kiln's version, the base model's config and weight hashes, the files' sha256,
//                          the LoRA and schedule Kiln would train with (the recipe's defaults)
//
// into a temp folder beside OUT that is renamed into place whole, so OUT is either absent, the old
// export, or the complete new one. A non-empty OUT is refused unless `overwrite` is set.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { openCheckpoint } from '../model/checkpoint';
import { resolveFimTemplate } from '../model/fim';
import { weightsFileHash } from '../model/graph/build-cache';
import { MODEL_FILE_CAPS, readModelJsonObject, sha256OfRegularFile } from '../model/read-model-file';
import type { DatasetExample, DatasetReport } from './build-dataset';
import { IGNORE_INDEX } from './pack';
import { type DatasetChoices, type DatasetRun, buildWorkspaceDataset } from './training-preview';

export const MANIFEST_FILE = 'manifest.json';
export const DATASET_FORMAT = 'kiln-dataset';
export const DATASET_FORMAT_VERSION = 1;
const SPLIT_FILES = { train: 'train.jsonl', validation: 'validation.jsonl' } as const;
/** The tokenizer files the examples' ids depend on, hashed so a trainer can check it has the same ones. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

export interface ExportDatasetOptions extends DatasetChoices, Omit<DatasetRun, 'keepExamples'> {
  out: string;
  /** Replace a non-empty OUT (its old contents are removed once the new export is in place). */
  overwrite?: boolean;
  /** Where weight hashes are remembered (the graph cache's folder: the same hashes Kiln keys builds by). */
  cacheDir: string;
  kilnVersion: string;
  /** The LoRA Kiln would train with, recorded as the recipe's defaults. */
  lora: { rank: number; alpha: number; targets: readonly string[]; lr: number };
  /** The rest of the schedule Kiln would train with, recorded as the recipe's defaults. */
  schedule: { batchSize: number; accumulation: number; warmupSteps: number; epochs: number; maxSteps: number };
}

export interface ExportDatasetResult {
  out: string;
  manifest: DatasetManifest;
}

export interface SplitFigures {
  files: number;
  examples: number;
  tokens: number;
  bytes: number;
  sha256: string;
}

/** manifest.json: snake_case, as the Python side reads it. */
export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  format_version: number;
  kiln_version: string;
  created: string;
  /** max_files: the scan's bound (a truncated scan read the first max_files files), to build the same dataset again. */
  workspace: { root: string; scan: 'git' | 'walk'; truncated: boolean; warnings: string[]; max_files: number };
  base_model: { path: string; model_type: string; config: unknown; weights: { file: string; bytes: number; sha256: string }[] };
  tokenizer: { files: Record<string, string>; vocab_size: number; eos_id: number | null };
  fim: { family: string; prefix_id: number; suffix_id: number; middle_id: number; pad_id: number | null; bos_id: number | null; orders: readonly string[] } | null;
  rates: { fim: number; spm: number; line_span: number };
  fim_loss: string;
  seed: number;
  sequence_length: number;
  /** Packing pads with this id; padded and untrained positions take `ignore_index` as their label. */
  pad_id: number;
  ignore_index: number;
  validation_fraction: number;
  split: { train: SplitFigures; validation: SplitFigures };
  files: { read: number; excluded: number; excluded_by_reason: Record<string, number>; scrubbed_lines: number; scrubbed_by_kind: Record<string, number> };
  examples_by_kind: Record<string, number>;
  lora: { rank: number; alpha: number; target_modules: readonly string[]; learning_rate: number };
  /** Kiln's schedule for this fine-tune (sequences per step = batch_size · accumulation; at most max_steps). */
  training: { batch_size: number; accumulation: number; warmup_steps: number; epochs: number; max_steps: number };
}

/** Throws unless `out` is absent, an empty folder, or `overwrite` is set (then it must be a folder). */
async function checkTarget(out: string, overwrite: boolean): Promise<void> {
  const st = statSync(out, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) throw new Error(`${out} exists and is not a folder`);
  if (!overwrite && (await readdir(out)).length > 0) throw new Error(`${out} is not empty; choose another folder or pass --overwrite to replace it`);
}

/** One example as a JSONL line (ids and the mask as numbers; the text decoded, special tokens as their text). */
function exampleLine(e: DatasetExample, decode: (ids: readonly number[]) => string): string {
  return `${JSON.stringify({ split: e.split, path: e.path, piece: e.piece, pieces: e.pieces, kind: e.kind, input_ids: e.tokens, loss_mask: Array.from(e.loss), text: decode(e.tokens) })}\n`;
}

/** Writes one split's examples to `file`; its byte count and sha256. */
async function writeSplit(file: string, examples: readonly DatasetExample[], decode: (ids: readonly number[]) => string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const handle = await open(file, 'wx', 0o644);
  try {
    for (const e of examples) {
      const chunk = Buffer.from(exampleLine(e, decode), 'utf8');
      hash.update(chunk);
      bytes += chunk.length;
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

/** The path with every symlink in its existing part resolved (the part not yet created cannot be a link). */
function canonicalPath(path: string): string {
  const abs = resolve(path);
  for (let head = abs, tail = ''; ; ) {
    try {
      return join(realpathSync(head), tail);
    } catch {
      const up = dirname(head);
      if (up === head) return abs;
      tail = join(basename(head), tail);
      head = up;
    }
  }
}

/** OUT is replaced whole with --overwrite: it must never be, hold, or sit inside the workspace or the model,
 *  compared with symlinks resolved (a linked parent of OUT would otherwise let --overwrite remove the workspace). */
export function checkPlacement(out: string, workspace: string, modelDir: string): void {
  const real = canonicalPath(out);
  for (const [what, dir] of [
    ['the workspace', canonicalPath(workspace)],
    ['the model folder', canonicalPath(modelDir)],
  ] as const) {
    if (within(dir, real)) throw new Error(`${out} holds ${what} (${dir}); export to a folder of its own`);
    if (within(real, dir)) throw new Error(`${out} is inside ${what} (${dir}); export outside it, or the next scan would read the export`);
  }
}

/** The base model as the manifest records it: config.json as written, and each weights file's hash. */
function baseModelRecord(modelDir: string, cacheDir: string): DatasetManifest['base_model'] {
  const checkpoint = openCheckpoint(modelDir);
  try {
    return {
      path: resolve(modelDir),
      model_type: checkpoint.config.modelType,
      config: readModelJsonObject(join(modelDir, 'config.json'), { maxBytes: MODEL_FILE_CAPS.config }),
      weights: checkpoint.weights.files.map((f) => ({ file: basename(f.path), bytes: statSync(f.path).size, sha256: weightsFileHash(f.path, cacheDir) })),
    };
  } finally {
    checkpoint.weights.close();
  }
}

/** Moves the finished temp folder to `out`; an old `out` is moved aside first and removed after. */
async function publish(tmp: string, out: string, overwrite: boolean): Promise<void> {
  await checkTarget(out, overwrite); // again: the folder may have been filled while the dataset was built
  if (!existsSync(out)) {
    await rename(tmp, out);
    return;
  }
  if ((await readdir(out)).length === 0) {
    await rmdir(out);
    await rename(tmp, out);
    return;
  }
  const old = `${out}.old-${process.pid}-${randomUUID()}`;
  await rename(out, old);
  await rename(tmp, out);
  await rm(old, { recursive: true, force: true });
}

export async function exportDataset(o: ExportDatasetOptions): Promise<ExportDatasetResult> {
  const out = resolve(o.out);
  checkPlacement(out, o.workspace, o.modelDir);
  await checkTarget(out, o.overwrite === true);
  const base = baseModelRecord(o.modelDir, o.cacheDir);
  const { dataset, tokenizer } = await buildWorkspaceDataset({ ...o, keepExamples: true });
  const fim = resolveFimTemplate(tokenizer);
  const report = dataset.report;
  const examples = dataset.examples ?? [];
  await mkdir(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}-${randomUUID()}`;
  await mkdir(tmp);
  try {
    const decode = (ids: readonly number[]) => tokenizer.decode(ids);
    const split = {} as DatasetManifest['split'];
    for (const which of ['train', 'validation'] as const) {
      o.signal?.throwIfAborted();
      const list = examples.filter((e) => e.split === which);
      const written = await writeSplit(join(tmp, SPLIT_FILES[which]), list, decode);
      split[which] = { files: report.files.filter((f) => f.split === which).length, examples: list.length, tokens: report.tokens[which], ...written };
    }
    const manifest = manifestOf({ o, report, base, split, fim, tokenizer: { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId } });
    await writeManifest(join(tmp, MANIFEST_FILE), manifest);
    o.signal?.throwIfAborted();
    await publish(tmp, out, o.overwrite === true);
    return { out, manifest };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function writeManifest(file: string, manifest: DatasetManifest): Promise<void> {
  const handle = await open(file, 'wx', 0o644);
  try {
    await handle.write(`${JSON.stringify(manifest, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface ManifestParts {
  o: ExportDatasetOptions;
  report: DatasetReport;
  base: DatasetManifest['base_model'];
  split: DatasetManifest['split'];
  fim: ReturnType<typeof resolveFimTemplate>;
  tokenizer: { vocabSize: number; eosId: number | undefined };
}

function manifestOf({ o, report, base, split, fim, tokenizer }: ManifestParts): DatasetManifest {
  const tokenizerFiles = Object.fromEntries(
    TOKENIZER_FILES.filter((f) => existsSync(join(o.modelDir, f))).map((f) => [f, sha256OfRegularFile(join(o.modelDir, f), 'tokenizer file')]),
  );
  const endId = tokenizer.eosId ?? fim?.stopIds[0];
  return {
    format: DATASET_FORMAT,
    format_version: DATASET_FORMAT_VERSION,
    kiln_version: o.kilnVersion,
    created: new Date().toISOString(),
    workspace: { root: report.root, scan: report.mode, truncated: report.truncated, warnings: report.warnings, max_files: o.maxFiles },
    base_model: base,
    tokenizer: { files: tokenizerFiles, vocab_size: tokenizer.vocabSize, eos_id: tokenizer.eosId ?? null },
    fim: fim
      ? { family: fim.family, prefix_id: fim.prefixId, suffix_id: fim.suffixId, middle_id: fim.middleId, pad_id: fim.padId ?? null, bos_id: fim.bosId ?? null, orders: fim.orders }
      : null,
    rates: { fim: report.fimRate, spm: report.spmRate, line_span: report.lineSpanRate },
    fim_loss: report.fimLoss,
    seed: report.seed,
    sequence_length: report.seqLen,
    // as build-dataset packs: the template's pad token, else the end token
    pad_id: fim?.padId ?? endId ?? 0,
    ignore_index: IGNORE_INDEX,
    validation_fraction: report.validationFraction,
    split,
    files: {
      read: report.files.length,
      excluded: report.excluded.length,
      excluded_by_reason: report.excludedByReason,
      scrubbed_lines: report.scrubbedLines,
      scrubbed_by_kind: report.scrubbedByKind as Record<string, number>,
    },
    examples_by_kind: report.examples,
    lora: { rank: o.lora.rank, alpha: o.lora.alpha, target_modules: o.lora.targets, learning_rate: o.lora.lr },
    training: {
      batch_size: o.schedule.batchSize,
      accumulation: o.schedule.accumulation,
      warmup_steps: o.schedule.warmupSteps,
      epochs: o.schedule.epochs,
      max_steps: o.schedule.maxSteps,
    },
  };
}
