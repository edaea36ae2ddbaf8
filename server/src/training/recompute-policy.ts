// When the trainer recomputes each layer's activations in the backward instead of keeping them
// (DiffGraph.recomputed): when the kept activations would pass a floor. Recomputing costs one more
// forward of every layer; it saves all but each layer's inputs (at the 0.5B shape, 1 × 512 tokens,
// LoRA r 8: peak RSS 5.2 → 3.0 GB on an fp32 base, 4.4 → 2.1 GB on an int8 one).
import type { ModelConfig } from '../model/config';
import type { TrainingMode } from '../model/graph/training-graph';
import { trainingStateBytes } from './state-bytes';

/** `auto`: by the rule below; `on`/`off`: as the user says. */
export type RecomputeChoice = 'auto' | 'on' | 'off';

/** Below this much kept activation memory, recomputing buys nothing a laptop needs (the embedded model's pretraining at 8 × 512 keeps 0.6 GB). */
export const RECOMPUTE_FLOOR_BYTES = 2 ** 30;

/** Whether a step of `batch` × `seq` tokens recomputes its layers: under `auto`, when the activations it would keep pass the floor. */
export function recomputesLayers(choice: RecomputeChoice, c: ModelConfig, spec: { mode: TrainingMode; batch: number; seq: number }): boolean {
  if (choice !== 'auto') return choice === 'on';
  return trainingStateBytes(c, { ...spec, recomputeLayers: false }).activations > RECOMPUTE_FLOOR_BYTES;
}
