// Picks the next token from one row of logits: greedy, or temperature + nucleus (top-p) sampling.
import { seededRandom } from '../random';

/** Sampling settings; temperature 0 is greedy. */
export interface SamplerOptions {
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 keeps the whole distribution. */
  topP: number;
  /** Seeds the PRNG: the same seed and logits give the same tokens. Random when absent. */
  seed?: number;
  /** Ids never chosen (FIM markers, padding). */
  banned?: readonly number[];
  /**
   * Ids at or above it are never chosen: the tokenizer's size, where the model's vocabulary outgrows it
   * (Qwen2.5-Coder: 151,936 logits, 151,669 tokens) and the padding rows' ids cannot be decoded.
   */
  vocabSize?: number;
}

/** Logits of the last position, [V], to a token id. */
export type Sampler = (logits: Float32Array) => number;

/** A sampler with its own PRNG state. */
export function createSampler(options: SamplerOptions): Sampler {
  const { temperature, topP } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`temperature must be a finite number ≥ 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  const banned = new Set(options.banned ?? []);
  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  let mask: Uint8Array | undefined;
  let scratch = new Float64Array(0);
  const allowedMask = (size: number): Uint8Array => {
    if (mask?.length !== size) {
      mask = new Uint8Array(size).fill(1);
      if (options.vocabSize !== undefined) mask.fill(0, Math.max(0, options.vocabSize));
      for (const id of banned) if (Number.isInteger(id) && id >= 0 && id < size) mask[id] = 0;
    }
    return mask;
  };
  return (logits) => {
    const allowed = allowedMask(logits.length);
    const best = argmax(logits, allowed);
    if (best < 0) throw new Error('no token can be sampled: every logit is banned, NaN or -Infinity');
    if (temperature === 0) return best;
    if (scratch.length !== logits.length) scratch = new Float64Array(logits.length);
    return sampleNucleus({ logits, allowed, best, temperature, topP, u: random(), weights: scratch });
  };
}

/** The allowed id with the largest logit, lowest id on ties; −1 when none is finite or +∞. */
function argmax(logits: Float32Array, allowed: Uint8Array): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (allowed[i] === 1 && v > bestValue) [best, bestValue] = [i, v];
  }
  return best;
}

/** One draw from a row of logits. */
interface NucleusDraw {
  logits: Float32Array; // [V]
  allowed: Uint8Array; // [V] 1 where an id may be chosen
  /** The allowed id with the largest logit. */
  best: number;
  temperature: number;
  topP: number;
  /** A uniform random number in [0, 1). */
  u: number;
  weights: Float64Array; // [V] scratch: unnormalized probabilities, the best id's is 1
}

/**
 * Softmax of logits / temperature over allowed ids, restricted to the nucleus: the fewest most
 * probable ids (ties by lower id) whose mass reaches topP. Sorting all V ids every step would cost
 * milliseconds at V = 150k, so only ids above a probability threshold are sorted; the threshold is
 * lowered until they hold at least topP of the mass, which makes the nucleus a prefix of them.
 */
function sampleNucleus({ logits, allowed, best, temperature, topP, u, weights }: NucleusDraw): number {
  const top = logits[best]!;
  if (top === Infinity) return best;
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    weights[i] = allowed[i] === 1 && v > -Infinity ? Math.exp((v - top) / temperature) : 0;
    total += weights[i]!;
  }
  let candidates: number[] = [];
  if (topP >= 1) {
    for (let i = 0; i < weights.length; i++) if (weights[i]! > 0) candidates.push(i);
  } else {
    for (let threshold = 1e-3; ; threshold = threshold > 1e-12 ? threshold * 1e-3 : 0) {
      candidates = [];
      let mass = 0;
      for (let i = 0; i < weights.length; i++) {
        if (weights[i]! > 0 && weights[i]! >= threshold) {
          candidates.push(i);
          mass += weights[i]!;
        }
      }
      if (mass >= topP * total || threshold === 0) break;
    }
    candidates.sort((a, b) => weights[b]! - weights[a]! || a - b);
    let mass = 0;
    let keep = 0;
    while (keep < candidates.length && (keep === 0 || mass < topP * total)) mass += weights[candidates[keep++]!]!;
    candidates.length = keep;
  }
  let nucleusMass = 0;
  for (const id of candidates) nucleusMass += weights[id]!;
  let target = u * nucleusMass;
  for (const id of candidates) {
    target -= weights[id]!;
    if (target < 0) return id;
  }
  return candidates[candidates.length - 1]!;
}
