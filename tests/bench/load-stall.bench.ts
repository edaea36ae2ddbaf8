// The longest event-loop stall while a model loads: graph preparation in this thread (the old path)
// against preparation in the model worker (the language server's path), for a cold build and a
// cached one, on a tiny and a medium seeded random model. A 1 ms timer records the largest gap
// between its ticks; session creation is timed apart to show whether InferenceSession.create blocks.
//   node --import tsx tests/bench/load-stall.bench.ts [--runs N]
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { loadCompletionModel } from '../../server/src/completion/completion-model';
import { MODEL_FILE } from '../../server/src/model/graph/write-model';
import { prepareGraphInWorker } from '../../server/src/lsp/model-worker-client';
import { prepareGraph } from '../../server/src/runtime/prepare-graph';
import { BenchArgs } from './bench-args';
import { writeTinyCodeModel } from '../helpers/tiny-code-model';
import { tempDir } from '../helpers/tiny-session';

/** Runs `work` while a 1 ms timer watches the event loop; resolves to the largest gap beyond 1 ms. */
async function longestStall(work: () => Promise<unknown>): Promise<{ stallMs: number; totalMs: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 20)); // the timer is running before the work starts
  last = performance.now();
  await work();
  const totalMs = performance.now() - t0 - 20;
  await new Promise((r) => setTimeout(r, 5));
  clearInterval(timer);
  return { stallMs: worst, totalMs };
}

const MODELS = {
  tiny: {},
  // ~10M parameters: d 256, 8 layers, MLP 1024, vocab 8192 (≈ 40 MB of fp32 weights)
  medium: { config: { hiddenSize: 256, numLayers: 8, numHeads: 8, numKvHeads: 8, headDim: 32, intermediateSize: 1024, vocabSize: 8192 } },
} as const;

async function main(): Promise<void> {
  const args = new BenchArgs(process.argv.slice(2));
  let runs = 2;
  for (let f = args.flag(); f !== undefined; f = args.flag()) {
    if (f === '--runs') runs = args.positiveInt();
    else throw new Error(`unknown flag ${f}`);
  }
  const root = tempDir('kiln-stall-');
  try {
    for (const [name, options] of Object.entries(MODELS)) {
      const dir = writeTinyCodeModel(join(root, name), options);
      for (let run = 0; run < runs; run++) {
        for (const where of ['thread', 'worker'] as const) {
          const cacheDir = join(root, `cache-${name}-${where}-${run}`);
          const choices = { fimOrder: 'auto' as const, quantization: 'none' as const };
          const opts = { executionProvider: 'cpu' as const, threads: 1, cacheDir, ...(where === 'worker' ? { prepare: prepareGraphInWorker } : {}) };
          for (const phase of ['cold', 'cached'] as const) {
            const r = await longestStall(async () => (await loadCompletionModel(dir, choices, opts)).loaded.session.release());
            console.log(`${name} ${where} ${phase}: longest stall ${r.stallMs.toFixed(1)} ms of a ${r.totalMs.toFixed(0)} ms load`);
          }
          const graph = join(prepareGraph(dir, { cacheDir }).graphDir, MODEL_FILE);
          const s = await longestStall(async () => (await ort.InferenceSession.create(graph, { executionProviders: ['cpu'], intraOpNumThreads: 1 })).release());
          console.log(`${name} InferenceSession.create alone: longest stall ${s.stallMs.toFixed(1)} ms of ${s.totalMs.toFixed(0)} ms`);
        }
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

void main();
