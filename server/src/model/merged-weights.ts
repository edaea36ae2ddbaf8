// Base weights with a LoRA adapter merged in as they are read, for graph building and merged export:
//
//   W' [out, in] = W [out, in] + scale · B [out, r] @ A [r, in]
//
// One tensor at a time: each read merges only the tensor asked for, so the merged model is never held
// beside the base one.
import { type LoraAdapter, splitLoraName } from './export/peft';
import type { WeightSource } from './graph/decoder-parts';

interface LoraFactors {
  a: Float32Array; // [r, in]
  b: Float32Array; // [out, r]
}

/** One tensor's LoRA update: its factors, the rank and the scale (alpha / rank). */
export interface LoraDelta extends LoraFactors {
  rank: number;
  scale: number;
}

/** W + scale · B @ A in float64 sums, as a new array (the base array is left untouched). */
export function mergeLoraDelta(name: string, w: Float32Array, { a, b, rank, scale }: LoraDelta): Float32Array {
  const inDim = a.length / rank;
  const outDim = b.length / rank;
  if (!Number.isInteger(inDim) || !Number.isInteger(outDim) || w.length !== outDim * inDim) {
    throw new Error(`${name}: ${w.length} base values do not fit LoRA factors A [${rank}, ${inDim}] and B [${outDim}, ${rank}]`);
  }
  const out = new Float32Array(w.length);
  const row = new Float64Array(inDim); // (B @ A)[o, :]
  for (let o = 0; o < outDim; o++) {
    row.fill(0);
    for (let k = 0; k < rank; k++) {
      const bk = b[o * rank + k]!;
      const aRow = k * inDim;
      for (let i = 0; i < inDim; i++) row[i] += bk * a[aRow + i]!;
    }
    const base = o * inDim;
    for (let i = 0; i < inDim; i++) out[base + i] = w[base + i]! + scale * row[i]!;
  }
  return out;
}

/** A WeightSource whose adapted `<module>.weight` tensors come back merged; every other tensor unchanged. */
export class MergedWeightSource implements WeightSource {
  /** `<module>.weight` -> its LoRA factors. */
  private readonly factors = new Map<string, LoraFactors>();

  constructor(
    private readonly base: WeightSource,
    private readonly adapter: LoraAdapter,
  ) {
    for (const [name, a] of adapter.tensors) {
      const p = splitLoraName(name);
      if (p?.which !== 'A') continue;
      const b = adapter.tensors.get(`${p.module}.lora_B.weight`);
      if (!b) throw new Error(`${adapter.dir}: "${name}" has no lora_B pair`);
      this.factors.set(`${p.module}.weight`, { a, b });
    }
  }

  /** The HF names of the tensors this source changes. */
  adaptedNames(): string[] {
    return [...this.factors.keys()];
  }

  readFloat32(name: string): Float32Array {
    const w = this.base.readFloat32(name);
    const f = this.factors.get(name);
    return f ? mergeLoraDelta(name, w, { ...f, rank: this.adapter.rank, scale: this.adapter.scale }) : w;
  }
}
