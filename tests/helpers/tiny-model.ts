// Seeded random-weight checkpoints in Hugging Face layout, made at test time (no downloads).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHfConfigJson, type ModelConfig } from '../../server/src/model/config';
import { expectedTensors } from '../../server/src/model/checkpoint';
import { writeSafetensors, type TensorToWrite } from '../../server/src/model/safetensors';
import { randomNormal, seededRandom } from './random';

export const TINY_LLAMA: ModelConfig = {
  modelType: 'llama',
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 4,
  headDim: 16,
  intermediateSize: 96,
  vocabSize: 300,
  maxPositions: 512,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeLinearFactor: 1,
  tieWordEmbeddings: false,
  attentionBias: false,
  bosTokenId: 1,
  eosTokenId: 2,
};

export const TINY_LLAMA_GQA: ModelConfig = { ...TINY_LLAMA, numKvHeads: 2, ropeTheta: 500000, ropeLinearFactor: 2 };

export const TINY_QWEN2: ModelConfig = {
  ...TINY_LLAMA,
  modelType: 'qwen2',
  numHeads: 4,
  numKvHeads: 1,
  tieWordEmbeddings: true,
  attentionBias: true,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000,
};

export interface TinyWeights {
  config: ModelConfig;
  /** HF name -> float32 values (the exact values written, after any fp16 rounding). */
  tensors: Map<string, Float32Array>;
}

/** Random weights for a config: norms near 1, matrices with std `std`. */
export function makeTinyWeights(config: ModelConfig, seed = 1, std = 0.08): TinyWeights {
  const rand = seededRandom(seed);
  const tensors = new Map<string, Float32Array>();
  for (const t of expectedTensors(config)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (t.name.endsWith('norm.weight')) {
      values = randomNormal(rand, count, 0.1).map((v) => 1 + v);
    } else if (t.name === 'model.embed_tokens.weight' || t.name === 'lm_head.weight') {
      values = randomNormal(rand, count, 0.5);
    } else {
      values = randomNormal(rand, count, t.name.endsWith('.bias') ? 0.05 : std);
    }
    tensors.set(t.name, values);
  }
  return { config, tensors };
}

/** Writes config.json and model.safetensors (optionally sharded into `shards` files). */
export function writeTinyCheckpoint(dir: string, weights: TinyWeights, options: { dtype?: 'F32' | 'F16'; shards?: number } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(weights.config), null, 2));
  const dtype = options.dtype ?? 'F32';
  const list: TensorToWrite[] = expectedTensors(weights.config).map((t) => ({ name: t.name, shape: t.shape, dtype, data: weights.tensors.get(t.name)! }));
  const shards = options.shards ?? 1;
  if (shards <= 1) {
    writeSafetensors(join(dir, 'model.safetensors'), list);
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(list.length / shards);
  for (let s = 0; s < shards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = list.slice(s * per, (s + 1) * per);
    for (const t of part) weightMap[t.name] = name;
    writeSafetensors(join(dir, name), part);
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
}
