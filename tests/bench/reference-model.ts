// The 25M-parameter reference model the benchmarks (and the GPU check) measure: its shape, its seeded
// random weights, random token streams and training batches over its ordinary ids.
import type { ModelConfig } from '../../server/src/model/config';
import type { Batch } from '../../server/src/training/trainer-session';
import { seededRandom } from '../helpers/random';
import { makeTinyWeights, type TinyWeights } from '../helpers/tiny-model';

/** d 512, 8 layers, 8 heads (MHA), vocab 8192, SiLU MLP 1536, tied head; 1,100 positions (prefill 512, decode at 1,000 + steps). */
// prettier-ignore
export const REFERENCE: ModelConfig = {
  modelType: 'llama',
  hiddenSize: 512,
  numLayers: 8,
  numHeads: 8,
  numKvHeads: 8,
  headDim: 64,
  intermediateSize: 1536,
  vocabSize: 8192,
  maxPositions: 1100,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeLinearFactor: 1,
  tieWordEmbeddings: true,
  attentionBias: false,
  eosTokenId: 8192 - 7, // <|endoftext|> of the tiny tokenizer
};

/** Ordinary ids only (the last 7 are the tiny tokenizer's special tokens). */
export const TOKEN_RANGE = REFERENCE.vocabSize - 7;

/** The model bench's weights: seed 2024, matrices with std 0.02 (the helper's std 0.5 embedding). */
export function referenceWeights(config: ModelConfig = REFERENCE): TinyWeights {
  return makeTinyWeights(config, 2024, 0.02);
}

/**
 * The model bench's seeded weights (std 0.02 matrices), with the embedding scaled from the helper's
 * std 0.5 to 0.02: with a tied head, std 0.5 gives logits in the hundreds (loss ~225 on random tokens,
 * a saturated softmax); at 0.02 the first loss is ≈ ln V, the regime training actually runs in.
 */
export function trainingReferenceWeights(config: ModelConfig = REFERENCE): TinyWeights {
  const w = referenceWeights(config);
  const embed = w.tensors.get('model.embed_tokens.weight')!;
  for (let i = 0; i < embed.length; i++) embed[i] = Math.fround(embed[i]! * 0.04);
  return w;
}

export function randomTokens(seed: number, count: number): number[] {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, () => Math.floor(rand() * TOKEN_RANGE));
}

/** `count` batches [B,S] of random ordinary tokens; labels are the next token (every position scored). */
export function randomBatches(count: number, B: number, S: number, seed: number): Batch[] {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const inputIds: Int32Array[] = [];
    const labels: Int32Array[] = [];
    for (let b = 0; b < B; b++) {
      const seq = Int32Array.from({ length: S + 1 }, () => Math.floor(rand() * TOKEN_RANGE));
      inputIds.push(seq.slice(0, S));
      labels.push(seq.slice(1));
    }
    return { inputIds, labels };
  });
}
