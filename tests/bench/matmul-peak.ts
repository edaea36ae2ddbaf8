// The fp32 MatMul peak in onnxruntime, which the training benches take MFU against: a chain of
// MatMuls in one graph, so one run's fetch and dispatch are amortized; best of a few runs.
import * as ort from 'onnxruntime-node';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../../server/src/model/graph/onnx-graph';
import { MODEL_FILE, writeModel } from '../../server/src/model/graph/write-model';
import { sessionOptions } from '../../server/src/runtime/execution-provider';
import { randomNormal, seededRandom } from '../helpers/random';

export const PEAK = { n: 1024, chain: 8, runs: 3 };

/** x ← x·W eight times in one graph (W ~ N(0, 1/n) keeps magnitudes stable), output Σx: one cheap fetch. */
export async function ortPeakSession(dir: string, threads: number): Promise<{ run: () => Promise<{ gflops: number; bestMs: number }>; release: () => Promise<void> }> {
  const { n, chain, runs } = PEAK;
  const g = new GraphBuilder('matmul_peak');
  let x = g.input('a', 'float32', [n, n]);
  const w = g.weight('w', 'float32', [n, n], () => randomNormal(seededRandom(7), n * n, 1 / Math.sqrt(n)));
  for (let i = 0; i < chain; i++) x = g.op('MatMul', [x, w]);
  g.output(g.op('ReduceSum', [x], { keepdims: 0 }), 'total', 'float32', []);
  writeModel(g, dir, { '': 17 });
  const session = await ort.InferenceSession.create(join(dir, MODEL_FILE), sessionOptions('cpu', threads));
  const feeds = { a: new ort.Tensor('float32', randomNormal(seededRandom(8), n * n, 1), [n, n]) };
  await session.run(feeds);
  return {
    async run() {
      let best = Infinity;
      for (let r = 0; r < runs; r++) {
        const t = performance.now();
        await session.run(feeds);
        best = Math.min(best, performance.now() - t);
      }
      return { gflops: (2 * n ** 3 * chain) / (best / 1000) / 1e9, bestMs: best };
    },
    release: () => session.release(),
  };
}
