// What the prompt shapes of the prefill budget and of PSM cost in quality: next-line exact match and
// edit similarity with the real engine (as `kiln eval`) on held-out code, every variant on the same
// sampled lines, each against its baseline as a paired difference with a 95% interval:
//   - the shorter prefix window a slow prefill answers from (256 and 128 tokens) against the full one;
//   - PSM with the typed middle against plain PSM, and plain PSM's suffix budgets against the default.
//
//   node --import tsx tests/bench/prompt-quality.bench.ts --dir HELD_OUT [--model DIR] [--lines 300] [--threads 2] [--out FILE]
//
// The default model is the embedded one (trained by Kiln; its held-out sets are named in its model
// card: npm ws, luxon, @trpc/server, @tanstack/react-query, Python's asyncio, email and json).
import * as os from 'node:os';
import { type CompletionModel, loadCompletionModel } from '../../server/src/completion/completion-model';
import { defaultModelPath } from '../../server/src/default-model';
import { collectEvalFiles } from '../../server/src/evaluation/eval-files';
import { type EvalOptions, evaluateModelPerLine, type LineScore } from '../../server/src/evaluation/evaluate';
import { type PairedDifference, pairedDifference } from '../../server/src/evaluation/paired-difference';
import type { FimOrder } from '../../server/src/model/fim';
import { BenchArgs } from './bench-args';
import { emitJson, log, round } from './bench-stats';

interface Settings {
  dir?: string;
  model?: string;
  lines: number;
  threads: number;
  out?: string;
}

function parseArgs(argv: string[]): Settings {
  const s: Settings = { lines: 300, threads: 2 };
  const args = new BenchArgs(argv);
  for (let a = args.flag(); a !== undefined; a = args.flag()) {
    if (a === '--dir') s.dir = args.value();
    else if (a === '--model') s.model = args.value();
    else if (a === '--lines') s.lines = args.positiveInt();
    else if (a === '--threads') s.threads = args.positiveInt();
    else if (a === '--out') s.out = args.value();
    else throw new Error(`unknown argument ${a}`);
  }
  if (!s.dir) throw new Error('--dir HELD_OUT is required (source files the model was not trained on)');
  return s;
}

interface Variant {
  name: string;
  order: FimOrder;
  prompt: NonNullable<EvalOptions['prompt']>;
  /** The variant it is compared with, line by line. */
  baseline?: string;
}

const VARIANTS: Variant[] = [
  { name: 'SPM, full window', order: 'spm', prompt: {} },
  { name: 'SPM, prefix ≤ 256 (the short window)', order: 'spm', prompt: { maxPrefixTokens: 256 }, baseline: 'SPM, full window' },
  { name: 'SPM, prefix ≤ 128', order: 'spm', prompt: { maxPrefixTokens: 128 }, baseline: 'SPM, full window' },
  { name: 'PSM plain', order: 'psm', prompt: { psmTypedMiddle: false } },
  { name: 'PSM typed middle', order: 'psm', prompt: { psmTypedMiddle: true }, baseline: 'PSM plain' },
  { name: 'PSM plain, suffix ≤ 64', order: 'psm', prompt: { psmTypedMiddle: false, maxSuffixTokens: 64 }, baseline: 'PSM plain' },
  { name: 'PSM plain, suffix ≤ 32', order: 'psm', prompt: { psmTypedMiddle: false, maxSuffixTokens: 32 }, baseline: 'PSM plain' },
  { name: 'PSM typed middle, suffix ≤ 64', order: 'psm', prompt: { psmTypedMiddle: true, maxSuffixTokens: 64 }, baseline: 'PSM plain' },
];

const fmt = (d: PairedDifference) =>
  `exact ${round(100 * d.exactMatch.mean, 1)} [${round(100 * d.exactMatch.low, 1)}, ${round(100 * d.exactMatch.high, 1)}] pts, edit sim ${round(d.editSimilarity.mean, 4)} [${round(d.editSimilarity.low, 4)}, ${round(d.editSimilarity.high, 4)}]`;

async function main(): Promise<void> {
  const s = parseArgs(process.argv.slice(2));
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const modelDir = s.model ?? defaultModelPath();
  if (!modelDir) throw new Error('no --model and no embedded model');
  const files = collectEvalFiles(s.dir!, { maxFiles: 200 });
  const models = new Map<FimOrder, CompletionModel>();
  const rows: { name: string; exactMatch: number; editSimilarity: number; lines: number; vsBaseline?: PairedDifference & { baseline: string } }[] = [];
  const perLine = new Map<string, LineScore[]>();
  try {
    for (const order of ['spm', 'psm'] as const)
      models.set(order, await loadCompletionModel(modelDir, { fimOrder: order, quantization: 'none' }, { executionProvider: 'cpu', threads: s.threads }));
    for (const v of VARIANTS) {
      const { report, perLine: lines } = await evaluateModelPerLine(models.get(v.order)!, files, { maxLines: s.lines, seed: 0, maxLossTokens: 16, prompt: v.prompt });
      perLine.set(v.name, lines);
      const base = v.baseline === undefined ? undefined : perLine.get(v.baseline)!;
      rows.push({
        name: v.name,
        exactMatch: round(report.exactMatch, 4),
        editSimilarity: round(report.editSimilarity, 4),
        lines: report.lines,
        ...(base ? { vsBaseline: { baseline: v.baseline!, ...pairedDifference(lines, base) } } : {}),
      });
      log(
        `${v.name}: exact ${round(100 * report.exactMatch, 1)}%, edit sim ${round(report.editSimilarity, 4)}${base ? `; minus ${v.baseline}: ${fmt(pairedDifference(lines, base))}` : ''}`,
      );
    }
  } finally {
    for (const m of models.values()) await m.loaded.session.release();
  }
  const result = {
    model: modelDir,
    dir: s.dir,
    files: files.length,
    contextTokens: models.get('spm')?.contextTokens,
    rows,
    loadavg: { before: loadavgBefore, after: os.loadavg().map((x) => round(x, 2)) },
  };
  log(`\n| prompt | exact match | edit similarity | minus baseline (mean [95% interval]) |\n| --- | --- | --- | --- |`);
  for (const r of rows) log(`| ${r.name} | ${round(100 * r.exactMatch, 1)}% | ${r.editSimilarity} | ${r.vsBaseline ? `${fmt(r.vsBaseline)} vs ${r.vsBaseline.baseline}` : '—'} |`);
  log(`loadavg before ${result.loadavg.before.join(' ')}, after ${result.loadavg.after.join(' ')}`);
  emitJson(result, s.out);
}

void main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
