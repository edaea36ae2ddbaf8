// Where a real-size model's load time goes: hashing the weights, validating the checkpoint, building
// and writing the graph (first load), then session creation from the cached graph (every load),
// with session-option variants interleaved, for fp32 and int8.
//
//   node --import tsx tests/bench/load-profile.bench.ts [--layers 24] [--threads 2] [--runs 3] [--out FILE]
//
// Random weights of Qwen2.5-Coder-0.5B's published shape (BF16-sized F16 safetensors), `--layers` of 24.
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { openCheckpoint } from '../../server/src/model/checkpoint';
import type { ModelConfig } from '../../server/src/model/config';
import { weightsFileHash } from '../../server/src/model/graph/build-cache';
import { DecoderSession, threadRunner } from '../../server/src/runtime/decoder-session';
import { sessionOptions } from '../../server/src/runtime/execution-provider';
import { prepareGraph } from '../../server/src/runtime/prepare-graph';
import { makeTinyWeights, TINY_QWEN2, writeTinyCheckpoint } from '../helpers/tiny-model';
import { BenchArgs } from './bench-args';
import { emitJson, log, round, summarize } from './bench-stats';

const args = { layers: 4, threads: 2, runs: 3, out: undefined as string | undefined };
const argv = new BenchArgs(process.argv.slice(2));
for (let a = argv.flag(); a !== undefined; a = argv.flag()) {
  if (a === '--layers') args.layers = argv.positiveInt();
  else if (a === '--threads') args.threads = argv.positiveInt();
  else if (a === '--runs') args.runs = argv.positiveInt();
  else if (a === '--out') args.out = argv.value();
  else throw new Error(`unknown argument ${a}`);
}

const SHAPE: ModelConfig = {
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

/** Session-creation variants: Kiln's options, and the knobs that could shorten creation. */
const VARIANTS: Record<string, (o: ort.InferenceSession.SessionOptions) => ort.InferenceSession.SessionOptions> = {
  kiln: (o) => o,
  'no-prepacking': (o) => ({ ...o, extra: { session: { disable_prepacking: '1' } } }),
  'basic-optimization': (o) => ({ ...o, graphOptimizationLevel: 'basic' }),
};

const PROMPT = Array.from({ length: 256 }, (_, i) => (i * 104_729) % 151_000);

const time = <T>(f: () => T): [T, number] => {
  const t0 = performance.now();
  const r = f();
  return [r, performance.now() - t0];
};

async function main(): Promise<void> {
  const root = mkdtempSync(join(os.tmpdir(), 'kiln-load-profile-'));
  try {
    const modelDir = join(root, 'model');
    writeTinyCheckpoint(modelDir, makeTinyWeights(SHAPE, 5, 0.02), { dtype: 'F16' });
    const cacheDir = join(root, 'cache');
    const file = openCheckpoint(modelDir).weights.files[0]!.path;
    const [, hashMs] = time(() => weightsFileHash(file, join(root, 'hash-only')));
    const [, validateMs] = time(() => openCheckpoint(modelDir).weights.close());
    const rows = [];
    for (const quantization of [undefined, 8] as const) {
      const precision = quantization ? 'int8' : 'fp32';
      const [first] = time(() => prepareGraph(modelDir, { cacheDir, quantization }));
      const [cached, cachedPrepareMs] = time(() => prepareGraph(modelDir, { cacheDir, quantization }));
      const create: Record<string, number[]> = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]));
      for (let r = 0; r < args.runs; r++) {
        for (const [name, variant] of Object.entries(VARIANTS)) {
          const t0 = performance.now();
          const s = await ort.InferenceSession.create(cached.modelPath, variant(sessionOptions('cpu', args.threads)));
          create[name]!.push(performance.now() - t0);
          await s.release();
        }
      }
      // what a variant costs afterwards: prefill of 256 tokens and decode per token, interleaved
      const speed: Record<string, { prefill256Ms: number[]; decodeMs: number[] }> = {};
      for (let r = 0; r < args.runs; r++) {
        for (const name of ['kiln', 'no-prepacking']) {
          const s = new DecoderSession(
            threadRunner(await ort.InferenceSession.create(cached.modelPath, VARIANTS[name]!(sessionOptions('cpu', args.threads)))),
            cached.config,
            'cpu',
            cached.weightBytes,
          );
          speed[name] ??= { prefill256Ms: [], decodeMs: [] };
          const entry = speed[name]!;
          const state = s.newState();
          const t0 = performance.now();
          await s.prefill(state, PROMPT);
          entry.prefill256Ms.push(performance.now() - t0);
          for (let t = 0; t < 16; t++) {
            const t1 = performance.now();
            await s.decode(state, (t * 7919) % 151_000);
            entry.decodeMs.push(performance.now() - t1);
          }
          await s.release();
        }
      }
      const row = {
        precision,
        firstPrepareMs: round(first.buildMs, 0),
        cachedPrepareMs: round(cachedPrepareMs, 0),
        sessionCreateMs: Object.fromEntries(Object.entries(create).map(([k, v]) => [k, summarize(v)])),
        afterwards: Object.fromEntries(Object.entries(speed).map(([k, v]) => [k, { prefill256Ms: summarize(v.prefill256Ms), decodeMs: summarize(v.decodeMs) }])),
      };
      rows.push(row);
      log(JSON.stringify(row));
    }
    const result = {
      shape: `Qwen2.5-Coder-0.5B, ${args.layers}/24 layers`,
      hashMs: round(hashMs, 0),
      validateMs: round(validateMs, 0),
      rows,
      loadavg: os.loadavg().map((x) => round(x, 2)),
    };
    log(`hash ${result.hashMs} ms, validate ${result.validateMs} ms; load average ${result.loadavg.join(' ')}`);
    emitJson(result, args.out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  log(String((err as Error).stack ?? err));
  process.exitCode = 1;
});
