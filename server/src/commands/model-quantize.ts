// `kiln model quantize <model-dir> [--eval <held-out dir>]`: builds the int8/int4 inference graphs
// (cached like any other) and, given held-out files, measures what quantization costs — validation
// loss and next-line scores against the unquantized model on the same files and lines — then records
// the measurement in the model's kiln.json. `kiln.quantization: auto` loads the recommended precision.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type CompletionModel, loadCompletionModel, type QuantizationRecord } from '../completion/completion-model';
import { defaultModelPath } from '../default-model';
import { automaticThreads } from '../runtime/threads';
import { loadModel } from '../runtime/load-model';
import { type Precision, precisionBits } from '../runtime/quantization-choice';
import { collectEvalFiles } from '../evaluation/eval-files';
import { evaluateModel, type EvalReport } from '../evaluation/evaluate';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, parseNonNegativeInt, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln model quantize [<model-dir>] [--bits 4|8|4,8] [--eval <held-out dir>] [--adapter DIR] [--max-lines N] [--max-files N] [--bound X] [--no-record] [--json] [--threads N] [--cache DIR]\n' +
  '  builds the block-quantized (32) graphs; with --eval, measures validation loss and next-line scores\n' +
  '  against the unquantized model and records them in <model-dir>/kiln.json, recommending the smallest\n' +
  '  precision whose relative validation-loss increase is within --bound (default 0.01). --adapter measures\n' +
  '  a LoRA adapter on each precision of the base (it runs on the quantized base); that is never recorded';

/** The default bound on the relative validation-loss increase a recommended precision may cost. */
export const DEFAULT_LOSS_BOUND = 0.01;

function parse(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    ...MODEL_OPTIONS,
    bits: { type: 'string' },
    eval: { type: 'string' },
    'max-lines': { type: 'string' },
    'max-files': { type: 'string' },
    bound: { type: 'string' },
    'no-record': { type: 'boolean' },
    adapter: { type: 'string' },
  });
  if (positionals.length > 1) throw new UsageError('expected at most one model folder');
  const model = positionals[0] ?? defaultModelPath();
  if (!model) throw new UsageError('no model folder given and no embedded model under models/');
  const bits = (values.bits ?? '4,8').split(',').map((b) => b.trim());
  if (!bits.every((b) => b === '4' || b === '8')) throw new UsageError(`--bits must be 4, 8 or 4,8, got "${values.bits}"`);
  const bound = values.bound === undefined ? DEFAULT_LOSS_BOUND : Number(values.bound);
  if (!(bound >= 0 && bound < 1)) throw new UsageError(`--bound must be a fraction from 0 to 1, got "${values.bound}"`);
  const precisions = [...new Set(bits)].map((b) => (b === '4' ? 'int4' : 'int8') as Precision);
  return {
    model: resolve(model),
    precisions,
    evalDir: values.eval,
    maxLines: parseNonNegativeInt('max-lines', values['max-lines'], 200),
    maxFiles: parseNonNegativeInt('max-files', values['max-files'], 200),
    bound,
    // the recommendation in kiln.json is the base model's: a measurement with an adapter is not it
    record: values['no-record'] !== true && values.adapter === undefined,
    json: values.json === true,
    runtime: { ...parseModelOptions(values), executionProvider: 'cpu' as const, ...(values.adapter === undefined ? {} : { adapterDir: resolve(values.adapter) }) },
  };
}

type Parsed = ReturnType<typeof parse>;

interface Row {
  precision: Precision;
  weightBytes: number;
  report?: EvalReport;
  relativeLossIncrease?: number;
}

export async function runModelQuantize(args: string[], out: (text: string) => void): Promise<number> {
  const parsed = withUsage(USAGE, () => parse(args));
  const rows = parsed.evalDir ? await measure(parsed, parsed.evalDir) : await buildOnly(parsed);
  const record = parsed.evalDir ? recordOf(rows, parsed, parsed.evalDir) : undefined;
  if (record && parsed.record) writeRecord(parsed.model, record);
  if (parsed.json) out(JSON.stringify({ model: parsed.model, adapter: parsed.runtime.adapterDir, rows, recommended: record?.recommended }, null, 2));
  else out(formatRows(rows, record, parsed));
  return 0;
}

async function buildOnly(parsed: Parsed): Promise<Row[]> {
  const rows: Row[] = [];
  for (const precision of ['none', ...parsed.precisions] as Precision[]) {
    const loaded = await loadModel(parsed.model, { ...parsed.runtime, threads: parsed.runtime.threads || automaticThreads(), quantization: precisionBits(precision) });
    rows.push({ precision, weightBytes: loaded.session.weightBytes });
    await loaded.session.release();
  }
  return rows;
}

/** Unquantized first, then each precision, on the same files and sampled lines. */
async function measure(parsed: Parsed, evalDir: string): Promise<Row[]> {
  const files = collectEvalFiles(evalDir, { maxFiles: parsed.maxFiles });
  if (files.length === 0) throw new Error(`no source files to evaluate under ${evalDir}`);
  const rows: Row[] = [];
  for (const precision of ['none', ...parsed.precisions] as Precision[]) {
    const model: CompletionModel = await loadCompletionModel(
      parsed.model,
      { fimOrder: 'auto', quantization: precision },
      { ...parsed.runtime, threads: parsed.runtime.threads || automaticThreads() },
    );
    try {
      const report = await evaluateModel(model, files, { maxLines: parsed.maxLines, seed: 0 });
      const base = rows[0]?.report?.validationLoss ?? report.validationLoss;
      rows.push({ precision, weightBytes: model.loaded.session.weightBytes, report, relativeLossIncrease: (report.validationLoss - base) / base });
    } finally {
      await model.loaded.session.release();
    }
  }
  return rows;
}

/** The smallest precision within the bound; `none` when neither is. */
function recordOf(rows: Row[], parsed: Parsed, evalDir: string): QuantizationRecord {
  const within = rows.filter((r) => r.precision !== 'none' && r.relativeLossIncrease! <= parsed.bound).sort((a, b) => a.weightBytes - b.weightBytes);
  return {
    recommended: within[0]?.precision ?? 'none',
    maxRelativeLossIncrease: parsed.bound,
    measured: Object.fromEntries(
      rows.map((r) => [
        r.precision,
        {
          validationLoss: r.report!.validationLoss,
          relativeLossIncrease: r.relativeLossIncrease!,
          exactMatch: r.report!.exactMatch,
          editSimilarity: r.report!.editSimilarity,
          weightBytes: r.weightBytes,
        },
      ]),
    ),
    heldOut: `${evalDir} (${rows[0]!.report!.files} files, ${rows[0]!.report!.lines} lines, ${rows[0]!.report!.tokens} loss tokens)`,
    date: new Date().toISOString(),
  };
}

/** Merges the record into kiln.json, written to a temporary file and renamed into place. */
function writeRecord(modelDir: string, record: QuantizationRecord): void {
  const file = join(modelDir, 'kiln.json');
  const json = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ ...json, quantization: record }, null, 2)}\n`);
  renameSync(tmp, file);
}

function formatRows(rows: Row[], record: QuantizationRecord | undefined, parsed: Parsed): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const measured = rows.some((r) => r.report);
  const lines = [
    ...(parsed.runtime.adapterDir ? [`with the adapter ${parsed.runtime.adapterDir} on each precision of the base (not recorded in kiln.json)`] : []),
    `${'precision'.padEnd(10)} ${'weights'.padStart(10)}${measured ? ` ${'val loss'.padStart(9)} ${'Δ loss'.padStart(8)} ${'exact'.padStart(7)} ${'edit sim'.padStart(8)}` : ''}`,
  ];
  for (const r of rows) {
    const e = r.report;
    const delta = r.relativeLossIncrease === undefined ? '' : `${(100 * r.relativeLossIncrease).toFixed(2)}%`;
    const scores = e
      ? ` ${e.validationLoss.toFixed(4).padStart(9)} ${delta.padStart(8)} ${`${(100 * e.exactMatch).toFixed(1)}%`.padStart(7)} ${e.editSimilarity.toFixed(3).padStart(8)}`
      : '';
    lines.push(`${r.precision.padEnd(10)} ${mb(r.weightBytes).padStart(10)}${scores}`);
  }
  if (record)
    lines.push(
      `recommended on the CPU: ${record.recommended} (bound: validation loss within ${(100 * parsed.bound).toFixed(1)}%)${parsed.record ? `; recorded in ${join(parsed.model, 'kiln.json')}` : ''}`,
    );
  return lines.join('\n');
}
