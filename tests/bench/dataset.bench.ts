// Dataset benchmark: the fine-tune's dataset build (scan, read, filter, tokenize, FIM, pack) on one
// thread against tokenizing on worker threads, A/B interleaved in one run (order alternated per rep),
// with the machine's load printed; the two datasets are checked identical on every rep. Less than
// 2 MB of text is tokenized on one thread either way (tokenize-pool's floor).
//
//   node --import tsx tests/bench/dataset.bench.ts [--dir DIR] [--model DIR] [--workers N] [--reps 3] [--out FILE]
//
// --dir defaults to the server's own sources (small: a smoke run); point it at a real workspace or a
// slice of the pretraining corpus (e.g. .kiln-cache/corpus/train/webpack) for meaningful figures.
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { buildDataset, type Dataset } from '../../server/src/dataset/build-dataset';
import { resolveFimTemplate } from '../../server/src/model/fim';
import { Tokenizer } from '../../server/src/model/tokenizer';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';

const REPO = join(__dirname, '..', '..');
let dir = join(REPO, 'server', 'src');
let model = join(REPO, 'models', 'kiln-code-4m');
let workers = availableParallelism();
let reps = 3;
let out: string | undefined;
const args = new BenchArgs(process.argv.slice(2));
for (let flag = args.flag(); flag !== undefined; flag = args.flag()) {
  if (flag === '--dir') dir = args.value();
  else if (flag === '--model') model = args.value();
  else if (flag === '--workers') workers = args.positiveInt();
  else if (flag === '--reps') reps = args.positiveInt();
  else if (flag === '--out') out = args.value();
  else throw new Error(`unknown flag ${flag}`);
}

const tokenizer = Tokenizer.load(model);
const template = resolveFimTemplate(tokenizer);
const build = (threads: number) => buildDataset(dir, tokenizer, template, { seqLen: 512, seed: 0, maxFiles: 1_000_000, parallel: { tokenizerDir: model, workers: threads } });

async function timed(threads: number): Promise<{ seconds: number; dataset: Dataset }> {
  const t0 = performance.now();
  const dataset = await build(threads);
  return { seconds: (performance.now() - t0) / 1000, dataset };
}

async function main(): Promise<void> {
  await build(1); // warm-up: the first build also compiles the tokenizer's hot paths
  const loadBefore = loadavg();
  const seconds: Record<'one' | 'workers', number[]> = { one: [], workers: [] };
  let bytes = 0;
  let tokens = 0;
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? ([1, workers] as const) : ([workers, 1] as const);
    const runs = new Map<number, { seconds: number; dataset: Dataset }>();
    for (const threads of order) runs.set(threads, await timed(threads));
    const one = runs.get(1)!;
    const many = runs.get(workers)!;
    if (!isDeepStrictEqual(one.dataset.report, many.dataset.report) || !isDeepStrictEqual(one.dataset.train, many.dataset.train)) throw new Error('the datasets differ');
    seconds.one.push(one.seconds);
    seconds.workers.push(many.seconds);
    bytes = one.dataset.report.files.reduce((sum, f) => sum + f.bytes, 0);
    tokens = one.dataset.report.tokens.train + one.dataset.report.tokens.validation;
    log(`rep ${rep + 1}: 1 thread ${one.seconds.toFixed(2)} s, ${workers} workers ${many.seconds.toFixed(2)} s`);
  }
  const one = summarize(seconds.one);
  const many = summarize(seconds.workers);
  const result = {
    dir,
    megabytes: round(bytes / MB),
    tokens,
    workers,
    reps,
    seconds: { oneThread: one, workers: many },
    speedUp: round(one.median / many.median, 2),
    megabytesPerSecond: { oneThread: round(bytes / MB / one.median, 2), workers: round(bytes / MB / many.median, 2) },
    loadAverage: { before: loadBefore.map((x) => round(x, 2)), after: loadavg().map((x) => round(x, 2)) },
    cpus: availableParallelism(),
  };
  log(
    `${result.megabytes} MB, ${tokens} tokens: 1 thread ${one.median} s, ${workers} workers ${many.median} s (median of ${reps}): ${result.speedUp}×; load ${result.loadAverage.before.join(' ')} → ${result.loadAverage.after.join(' ')}`,
  );
  emitJson(result, out);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
