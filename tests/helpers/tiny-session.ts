// Writes a seeded tiny checkpoint to a temp folder and loads it through Kiln's real loading path.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from '../../server/src/model/config';
import type { AttentionPath, WeightType } from '../../server/src/model/graph/decoder';
import type { QuantBits } from '../../server/src/model/quantize';
import { loadModel, type LoadedModel } from '../../server/src/runtime/load-model';
import { makeTinyWeights, type TinyWeights, writeTinyCheckpoint } from './tiny-model';

export function tempDir(prefix = 'kiln-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface TinySession {
  weights: TinyWeights;
  modelDir: string;
  cacheDir: string;
  model: LoadedModel;
}

export interface CpuLoadOptions {
  attention?: AttentionPath;
  weightType?: WeightType;
  quantization?: QuantBits;
  cacheDir: string;
}

/** Loads a checkpoint folder through Kiln's real path, on the CPU with one thread. */
export function loadOnCpu(modelDir: string, opts: CpuLoadOptions): Promise<LoadedModel> {
  return loadModel(modelDir, {
    executionProvider: 'cpu',
    threads: 1,
    attention: opts.attention,
    weightType: opts.weightType,
    quantization: opts.quantization,
    cacheDir: opts.cacheDir,
  });
}

export async function loadTinyModel(
  config: ModelConfig,
  opts: { seed?: number; attention?: AttentionPath; weightType?: WeightType; quantization?: QuantBits; cacheDir?: string } = {},
): Promise<TinySession> {
  const root = tempDir();
  const weights = makeTinyWeights(config, opts.seed ?? 7);
  const modelDir = join(root, 'model');
  writeTinyCheckpoint(modelDir, weights);
  const cacheDir = opts.cacheDir ?? join(root, 'cache');
  const model = await loadOnCpu(modelDir, { attention: opts.attention, weightType: opts.weightType, quantization: opts.quantization, cacheDir });
  return { weights, modelDir, cacheDir, model };
}

/** Logits rows [T][V] of one forward pass over `tokens` on a fresh KV state. */
export async function forwardRows(model: LoadedModel, tokens: number[]): Promise<Float32Array[]> {
  const { logits } = await model.session.forward(model.session.newState(), [tokens], 'all');
  const V = model.config.vocabSize;
  return tokens.map((_, t) => logits.subarray(t * V, (t + 1) * V));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
