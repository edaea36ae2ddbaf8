// A seeded random PEFT LoRA adapter for a checkpoint's shape: the benchmarks' stand-in for a
// fine-tuned one (what an adapter costs in bytes and time does not depend on its values).
import { expectedTensors } from '../../server/src/model/checkpoint';
import type { ModelConfig } from '../../server/src/model/config';
import { saveLoraAdapter } from '../../server/src/model/export/peft';
import type { LoraTarget } from '../../server/src/model/graph/training-graph';
import { randomNormal, seededRandom } from '../helpers/random';

export interface RandomAdapterSpec {
  /** The base checkpoint's folder, recorded as base_model_name_or_path. */
  baseModel: string;
  config: ModelConfig;
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
  seed?: number;
}

/** Writes the adapter to `dir`: A [rank, in] and B [out, rank] for every targeted projection of every layer, N(0, 0.02). */
export function writeRandomAdapter(dir: string, spec: RandomAdapterSpec): void {
  const rand = seededRandom(spec.seed ?? 9);
  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  for (const t of expectedTensors(spec.config)) {
    const m = /^(.*\.([a-z]+_proj))\.weight$/.exec(t.name);
    if (!m || !spec.targets.includes(m[2] as LoraTarget)) continue;
    const [out, inDim] = t.shape as [number, number];
    tensors.set(`${m[1]}.lora_A.weight`, randomNormal(rand, spec.rank * inDim, 0.02));
    shapes.set(`${m[1]}.lora_A.weight`, [spec.rank, inDim]);
    tensors.set(`${m[1]}.lora_B.weight`, randomNormal(rand, out * spec.rank, 0.02));
    shapes.set(`${m[1]}.lora_B.weight`, [out, spec.rank]);
  }
  saveLoraAdapter(dir, { baseModel: spec.baseModel, mode: { rank: spec.rank, alpha: spec.alpha, targets: [...spec.targets] }, tensors, shapes });
}
