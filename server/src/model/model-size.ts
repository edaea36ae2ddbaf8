// How big a model is from its config alone: parameters, weight bytes at a precision, KV-cache bytes
// at a context. Used to pick a default precision and to size download presets before any weight
// file exists. Shapes as in checkpoint.ts's expectedTensors (a unit test keeps the two equal).
import type { ModelConfig } from './config';

/** Parameters of a LLaMA-family decoder: embedding, per layer attention (+ q/k/v biases) and MLP and two norms, final norm, untied head. */
export function parameterCount(c: ModelConfig): number {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attention = d * q + 2 * d * kv + q * d + (c.attentionBias ? q + 2 * kv : 0);
  const mlp = 3 * d * c.intermediateSize;
  const perLayer = attention + mlp + 2 * d;
  return c.vocabSize * d + c.numLayers * perLayer + d + (c.tieWordEmbeddings ? 0 : c.vocabSize * d);
}

/** Bytes per weight of each stored precision; int8/int4 add one fp32 scale and one zero point per block of 32. */
export const BYTES_PER_PARAMETER = { fp32: 4, fp16: 2, bf16: 2, int8: 1 + 5 / 32, int4: 0.5 + 4.5 / 32 } as const;
export type StoredPrecision = keyof typeof BYTES_PER_PARAMETER;

/** Float32 KV cache of one sequence of `tokens` positions: keys and values of every layer. */
export function kvCacheBytes(c: ModelConfig, tokens: number): number {
  return 2 * c.numLayers * c.numKvHeads * c.headDim * tokens * 4;
}
