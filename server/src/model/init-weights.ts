// A freshly initialised checkpoint for pretraining from scratch: N(0, 0.02) matrices and
// embeddings, residual output projections scaled by 1/√(2·layers) (GPT-2's scheme), norms at 1.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedTensors } from './checkpoint';
import { type ModelConfig, toHfConfigJson } from './config';
import { writeSafetensors } from './safetensors';

function normal(seed: number, count: number, std: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())) * std;
    const th = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(th);
    if (i + 1 < count) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

export function initialWeights(c: ModelConfig, seed: number, std = 0.02): Map<string, Float32Array> {
  const residualStd = std / Math.sqrt(2 * c.numLayers);
  const out = new Map<string, Float32Array>();
  expectedTensors(c).forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.name.endsWith('norm.weight')) out.set(t.name, new Float32Array(n).fill(1));
    else if (t.name.endsWith('.bias')) out.set(t.name, new Float32Array(n));
    else out.set(t.name, normal(seed * 1000 + i, n, /o_proj|down_proj/.test(t.name) ? residualStd : std));
  });
  return out;
}

/** Writes config.json, model.safetensors and the tokenizer files copied from `tokenizerDir`. */
export function writeInitialCheckpoint(dir: string, c: ModelConfig, tokenizerDir: string, seed: number): void {
  mkdirSync(dir, { recursive: true });
  const weights = initialWeights(c, seed);
  writeSafetensors(join(dir, 'model.safetensors'), expectedTensors(c).map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32' as const, data: weights.get(t.name)! })));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(c), null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(tokenizerDir, f))) copyFileSync(join(tokenizerDir, f), join(dir, f));
  }
}
