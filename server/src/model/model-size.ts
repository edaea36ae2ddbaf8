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

/** Bytes per weight of each stored precision; int4 adds one fp32 scale and one zero point per block of 32 (int8's per-channel scale is negligible). */
export const BYTES_PER_PARAMETER = { fp32: 4, fp16: 2, bf16: 2, int8: 1, int4: 0.5 + 4.5 / 32 } as const;
export type StoredPrecision = keyof typeof BYTES_PER_PARAMETER;

/** Float32 KV cache of one sequence of `tokens` positions: keys and values of every layer. */
export function kvCacheBytes(c: Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim'>, tokens: number): number {
  return 2 * c.numLayers * c.numKvHeads * c.headDim * tokens * 4;
}

/** How Kiln loads the weights: float32, float16, int8 (MatMulInteger, per channel) or int4 (MatMulNBits, blocks of 32) with an fp16 embedding. */
export type LoadPrecision = 'fp32' | 'fp16' | 'int8' | 'int4';

/** MatMulNBits storage of a weight [n, k]: codes, one fp32 scale per block, packed zero points (quantized-matmul.ts). */
function quantizedBytes(n: number, k: number, bits: 4 | 8): number {
  // int8: MatMulInteger's int8 codes [K, N] and one fp32 scale per output channel
  if (bits === 8) return n * k + 4 * n;
  const blocks = Math.ceil(k / 32);
  return n * blocks * ((32 * bits) / 8) + n * blocks * 4 + n * Math.ceil((blocks * bits) / 8);
}

/**
 * Bytes of the weights in Kiln's built graph (the default plain-attention path): the Linear layers
 * at `p`, norms and biases in fp32, the embedding in fp32 (fp16 beside fp16 or quantized matrices),
 * and a quantized graph's LM head quantized on its own even when tied to the embedding.
 */
export function loadedWeightBytes(c: ModelConfig, p: LoadPrecision): number {
  const d = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  const matrices: [number, number][] = [
    [q, d],
    [kv, d],
    [kv, d],
    [d, q],
    [I, d],
    [I, d],
    [d, I],
  ];
  const bits = p === 'int8' ? 8 : p === 'int4' ? 4 : undefined;
  const elem = p === 'fp32' ? 4 : 2;
  const matrix = ([n, k]: [number, number]) => (bits ? quantizedBytes(n, k, bits) : n * k * elem);
  const smallPerLayer = 4 * (2 * d + (c.attentionBias ? q + 2 * kv : 0));
  const perLayer = matrices.reduce((a, m) => a + matrix(m), 0) + smallPerLayer;
  const embed = c.vocabSize * d * elem;
  const head = bits ? quantizedBytes(c.vocabSize, d, bits) : c.tieWordEmbeddings ? 0 : c.vocabSize * d * elem;
  return embed + c.numLayers * perLayer + 4 * d + head;
}
