// A freshly initialised checkpoint for pretraining from scratch: N(0, 0.02) matrices and
// embeddings, residual output projections scaled by 1/√(2·layers) (GPT-2's scheme), norms at 1.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from './checkpoint';
import { type ModelConfig, toHfConfigJson } from './config';
import { writeSafetensors } from './safetensors';
import { randomNormal, seededRandom } from '../random';

export function initialWeights(c: ModelConfig, seed: number, std = 0.02): Map<string, Float32Array> {
  const residualStd = std / Math.sqrt(2 * c.numLayers);
  const out = new Map<string, Float32Array>();
  expectedTensors(c).forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.name.endsWith('norm.weight')) out.set(t.name, new Float32Array(n).fill(1));
    else if (t.name.endsWith('.bias')) out.set(t.name, new Float32Array(n));
    else out.set(t.name, randomNormal(seededRandom(seed * 1000 + i), n, /o_proj|down_proj/.test(t.name) ? residualStd : std));
  });
  return out;
}

/** Writes config.json, model.safetensors and the tokenizer files copied from `tokenizerDir`. */
export function writeInitialCheckpoint(dir: string, c: ModelConfig, tokenizerDir: string, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const weights = initialWeights(c, seed);
  writeSafetensors(
    join(dir, 'model.safetensors'),
    expectedTensors(c).map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const, data: weights.get(t.name)! })),
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(c), null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(dir, f));
  }
}
