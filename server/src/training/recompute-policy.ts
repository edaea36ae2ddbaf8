// When the trainer recomputes each layer's activations in the backward instead of keeping them
// (DiffGraph.recomputed): when memory is short for them. Recomputing costs one more forward of every
// layer and saves all but each layer's inputs — at the 0.5B shape, LoRA r 8, 1 × 512 tokens, 2
// threads: 73.4 → 59.7 tokens/s and peak RSS 5.2 → 2.9 GB on an fp32 base, 62.9 → 53.5 tokens/s and
// 4.3 → 2.2 GB on an int8 one (tests/bench/training-real-size.bench.ts, README).
import { totalmem } from 'node:os';
import type { ModelConfig } from '../model/config';
import type { TrainingMode } from '../model/graph/training-graph';
import { trainingStateBytes } from './state-bytes';

/** `auto`: by the rule below; `on`/`off`: as the user says. */
export type RecomputeChoice = 'auto' | 'on' | 'off';

/** Below this much kept activation memory, recomputing buys nothing a laptop needs (the embedded model's pretraining at 8 × 512 keeps 0.6 GB). */
export const RECOMPUTE_FLOOR_BYTES = 2 ** 30;
/** Share of the machine's memory a step may take with its activations kept; past it, they are recomputed. */
export const KEPT_STEP_MEMORY_SHARE = 0.25;

/**
 * Whether a step of `batch` × `seq` tokens recomputes its layers: under `auto`, when the activations
 * it would keep pass the floor and the step would then take more than a quarter of `totalMemory`.
 */
export function recomputesLayers(choice: RecomputeChoice, c: ModelConfig, spec: { mode: TrainingMode; batch: number; seq: number }, totalMemory: number = totalmem()): boolean {
  if (choice !== 'auto') return choice === 'on';
  const kept = trainingStateBytes(c, { ...spec, recomputeLayers: false });
  return kept.activations > RECOMPUTE_FLOOR_BYTES && kept.total > KEPT_STEP_MEMORY_SHARE * totalMemory;
}
