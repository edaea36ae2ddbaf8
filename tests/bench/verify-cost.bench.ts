// What lookup decoding's verification costs on a real-size model: one forward of n tokens (the
// last pick plus n − 1 drafted ones, all positions' logits back, as `verify` runs it) against one
// decode step, at the context a keystroke sees (~900 tokens). Lookup decoding pays off when the
// tokens it gains per forward exceed this ratio; random weights say nothing about how often drafts
// are accepted, but everything about what a forward of n tokens costs.
//
//   node --import tsx tests/bench/verify-cost.bench.ts [--size 0.5b|1.5b] [--quantization int8|int4|none]
//        [--lengths 1,2,3,5,9] [--context 900] [--reps 24] [--threads 2] [--out FILE]
//
// Lengths are interleaved within each rep in an order that rotates per rep; each forward is
// truncated off again, so every one runs at the same context.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { InferenceServer } from '../../server/src/runtime/inference-server';
import { BenchArgs } from './bench-args';
import { emitJson, log, round, summarize } from './bench-stats';
import { typingTrace } from './keystroke-trace';
import { REAL_SIZE_CHOICES, type RealSize, realSizeModel } from './real-size-model';

interface VerifyCostSettings {
  size: RealSize;
  quantization: 'int8' | 'int4' | 'none';
  lengths: number[];
  context: number;
  reps: number;
  threads: number;
  out?: string;
}

function parse(argv: readonly string[]): VerifyCostSettings {
  const s: VerifyCostSettings = { size: '0.5b', quantization: 'int8', lengths: [1, 2, 3, 5, 9], context: 900, reps: 24, threads: 2 };
  const a = new BenchArgs(argv);
  for (let flag = a.flag(); flag !== undefined; flag = a.flag()) {
    if (flag === '--size') s.size = a.oneOf(REAL_SIZE_CHOICES);
    else if (flag === '--quantization') s.quantization = a.oneOf(['int8', 'int4', 'none'] as const);
    else if (flag === '--lengths') s.lengths = a.value().split(',').map(Number);
    else if (flag === '--context') s.context = a.positiveInt();
    else if (flag === '--reps') s.reps = a.positiveInt();
    else if (flag === '--threads') s.threads = a.positiveInt();
    else if (flag === '--out') s.out = a.value();
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!s.lengths.length || s.lengths.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--lengths takes positive integers');
  if (!s.lengths.includes(1)) s.lengths.unshift(1); // the decode step everything is compared with
  return s;
}

async function main(): Promise<void> {
  const s = parse(process.argv.slice(2));
  const loadavgBefore = os.loadavg().map((x) => round(x, 2));
  const cacheDir = mkdtempSync(join(os.tmpdir(), 'kiln-bench-verify-'));
  try {
    const model = await loadCompletionModel(
      realSizeModel(s.size, { log }),
      { fimOrder: 'auto', quantization: s.quantization },
      { executionProvider: 'cpu', threads: s.threads, cacheDir },
    );
    const file = model.tokenizer.encode(typingTrace().at(-1)!.text);
    const tokens: number[] = [];
    while (tokens.length < s.context + Math.max(...s.lengths)) tokens.push(...file);
    const server = new InferenceServer(model.loaded.session, { kvBudgetBytes: 0 });
    const { slot } = await server.open(tokens.slice(0, 1));
    await server.extend(slot, tokens.slice(1, s.context));
    const ms = new Map<number, number[]>(s.lengths.map((n) => [n, []]));
    const draft = (n: number) => tokens.slice(s.context, s.context + n);
    for (const n of s.lengths) await server.verify(slot, draft(n)).then(() => server.truncate(slot, s.context)); // untimed warm-up
    for (let rep = 0; rep < s.reps; rep++) {
      const order = s.lengths.map((_, i) => s.lengths[(i + rep) % s.lengths.length]!);
      for (const n of order) {
        const t0 = performance.now();
        const logits = await server.verify(slot, draft(n));
        ms.get(n)!.push(performance.now() - t0);
        if (logits.length !== n) throw new Error(`verify of ${n} tokens returned ${logits.length} rows`);
        server.truncate(slot, s.context);
      }
    }
    server.release(slot);
    const step = summarize(ms.get(1)!).median;
    const rows = s.lengths.map((n) => {
      const t = summarize(ms.get(n)!);
      return { tokens: n, ms: t, ratioToStep: round(t.median / step, 2) };
    });
    for (const r of rows) log(`forward of ${r.tokens} token(s) at context ${s.context}: median ${round(r.ms.median, 1)} ms (×${r.ratioToStep} one step)`);
    emitJson(
      {
        settings: s,
        quantization: model.loaded.quantization ?? 'none',
        rows,
        machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavgBefore, loadavgAfter: os.loadavg().map((x) => round(x, 2)) },
      },
      s.out,
    );
    await model.loaded.session.release();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
