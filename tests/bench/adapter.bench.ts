// What a LoRA adapter costs on a real-size shape: bytes written to the graph cache (the adapter graph
// beside its base vs the base graph itself), build and session-create times, and decode ms/token of
// the base vs base + adapter (LoRA side products), interleaved in one run, for fp32 and int8 bases.
//
//   node --import tsx tests/bench/adapter.bench.ts [--layers 24] [--rank 16] [--threads 2] [--steps 24] [--rounds 4] [--out FILE]
//
// Random weights of Qwen2.5-Coder-0.5B's published shape (d 896, 14/2 heads, MLP 4864, vocab 151,936,
// QKV biases, tied head), `--layers` of its 24 layers; LoRA on all seven projections of every layer.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ModelConfig } from '../../server/src/model/config';
import { LORA_TARGETS } from '../../server/src/model/graph/training-graph';
import type { QuantBits } from '../../server/src/model/quantize';
import { type LoadedModel, loadModel } from '../../server/src/runtime/load-model';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { BenchArgs } from './bench-args';
import { emitJson, log, MB, round, summarize } from './bench-stats';
import { writeRandomAdapter } from './random-adapter';

const args = { layers: 4, rank: 16, threads: 2, steps: 24, rounds: 4, out: undefined as string | undefined };
const argv = new BenchArgs(process.argv.slice(2));
for (let a = argv.flag(); a !== undefined; a = argv.flag()) {
  if (a === '--layers') args.layers = argv.positiveInt();
  else if (a === '--rank') args.rank = argv.positiveInt();
  else if (a === '--threads') args.threads = argv.positiveInt();
  else if (a === '--steps') args.steps = argv.positiveInt();
  else if (a === '--rounds') args.rounds = argv.positiveInt();
  else if (a === '--out') args.out = argv.value();
  else throw new Error(`unknown argument ${a}`);
}

const QWEN_05B: ModelConfig = {
  ...TINY_QWEN2,
  hiddenSize: 896,
  numLayers: args.layers,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  intermediateSize: 4864,
  vocabSize: 151_936,
  maxPositions: 32_768,
};

const root = mkdtempSync(join(os.tmpdir(), 'kiln-adapter-bench-'));
const folderBytes = (dir: string, pick: (f: string) => boolean = () => true) =>
  readdirSync(dir)
    .filter(pick)
    .reduce((a, f) => a + statSync(join(dir, f)).size, 0);

async function decodeMs(model: LoadedModel, prompt: number[], steps: number): Promise<number[]> {
  const s = model.session;
  const state = s.newState();
  await s.prefill(state, prompt);
  const times: number[] = [];
  for (let t = 0; t < steps; t++) {
    const t0 = performance.now();
    await s.decode(state, (t * 7919) % 151_000);
    times.push(performance.now() - t0);
  }
  return times;
}

async function main(): Promise<void> {
  const modelDir = join(root, 'model');
  const t0 = performance.now();
  writeTinyCheckpoint(modelDir, makeTinyWeights(QWEN_05B, 5, 0.02), { dtype: 'F16' });
  log(`checkpoint (${args.layers} of 24 layers, F16) written in ${(performance.now() - t0).toFixed(0)} ms`);
  const adapterDir = join(root, 'adapter');
  writeRandomAdapter(adapterDir, { baseModel: modelDir, config: QWEN_05B, rank: args.rank, alpha: 2 * args.rank, targets: LORA_TARGETS });
  const adapterFileBytes = statSync(join(adapterDir, 'adapter_model.safetensors')).size;
  const cacheDir = join(root, 'cache');
  const prompt = Array.from({ length: 256 }, (_, i) => (i * 104_729) % 151_000);
  const rows = [];
  for (const quantization of [undefined, 8] as (QuantBits | undefined)[]) {
    const load = (adapter: boolean) =>
      loadModel(modelDir, { executionProvider: 'cpu', threads: args.threads, cacheDir, quantization, adapterDir: adapter ? adapterDir : undefined });
    const base = await load(false);
    const baseBytes = folderBytes(base.graphDir);
    const adapted = await load(true);
    const adapterBytes = folderBytes(adapted.graphDir) - baseBytes;
    const adapterOnlyFiles = folderBytes(adapted.graphDir, (f) => f.startsWith('lora-'));
    // A/B interleaved: base, adapter, base, adapter, …
    const baseMs: number[] = [];
    const adapterMs: number[] = [];
    for (let r = 0; r < args.rounds; r++) {
      baseMs.push(...(await decodeMs(base, prompt, args.steps)));
      adapterMs.push(...(await decodeMs(adapted, prompt, args.steps)));
    }
    await adapted.session.release(); // one adapter session at a time keeps the full shape's RSS down
    const cachedAdapter = await load(true);
    const row = {
      precision: quantization ? `int${quantization}` : 'fp32',
      baseGraphMB: round(baseBytes / MB, 1),
      baseBuildMs: round(base.buildMs, 0),
      adapterWrittenMB: round(adapterBytes / MB, 2),
      adapterFilesMB: round(adapterOnlyFiles / MB, 2),
      adapterSafetensorsMB: round(adapterFileBytes / MB, 2),
      adapterBuildMs: round(adapted.buildMs, 0),
      adapterSessionCreateMs: round(adapted.sessionCreateMs, 0),
      cachedAdapterPrepareMs: round(cachedAdapter.buildMs, 0),
      cachedAdapterSessionCreateMs: round(cachedAdapter.sessionCreateMs, 0),
      decodeBaseMs: summarize(baseMs),
      decodeAdapterMs: summarize(adapterMs),
    };
    rows.push(row);
    log(JSON.stringify(row));
    for (const m of [base, cachedAdapter]) await m.session.release();
  }
  const result = { shape: `Qwen2.5-Coder-0.5B, ${args.layers}/24 layers`, rank: args.rank, threads: args.threads, loadavg: os.loadavg().map((x) => round(x, 2)), rows };
  log(`load average ${result.loadavg.join(' ')}`);
  emitJson(result, args.out);
}

main()
  .catch((err: unknown) => {
    log(String((err as Error).stack ?? err));
    process.exitCode = 1;
  })
  .finally(() => rmSync(root, { recursive: true, force: true }));
