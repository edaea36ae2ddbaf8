// The memory a training step needs by design, counted from the shapes (fp32 throughout): what the
// bench and the real-size memory test print next to the measured peak, so a gap between the two
// points at something materialised that the design does not call for.
import { expectedTensors } from '../model/checkpoint';
import type { ModelConfig } from '../model/config';
import { lossChunkCount } from '../model/graph/loss-head';
import type { TrainingMode } from '../model/graph/training-graph';

export interface StateBytesSpec {
  mode: TrainingMode;
  batch: number;
  seq: number;
  /** Chunks the loss head works in (default: the graph's own choice for the vocabulary). */
  lossChunks?: number;
  /** Each layer's activations recomputed in the backward: only the layers' inputs are kept, and one layer's activations live at a time. */
  recomputeLayers?: boolean;
}

export interface StateBytes {
  /** The frozen base as the graph holds it: fp32, or with a quantized base (QLoRA) its projections as codes, scales and zero points. */
  frozenWeights: number;
  /** Trainable parameters with their gradients and both AdamW moments. */
  trainable: number;
  /** Logits and their gradient for one chunk of loss positions (one chunk live at a time). */
  lossChunk: number;
  /**
   * Activations kept for the backward pass: per layer B·S·(8·d + 3·mlp) + 2·B·H·S² floats, all layers;
   * recomputed, one layer's of them plus each layer's two inputs (B·S·d floats each).
   */
  activations: number;
  total: number;
}

const F32 = 4;

function loraParamCount(c: ModelConfig, mode: Extract<TrainingMode, { kind: 'lora' }>): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const dims: Record<string, [number, number]> = {
    q_proj: [c.hiddenSize, q],
    k_proj: [c.hiddenSize, kv],
    v_proj: [c.hiddenSize, kv],
    o_proj: [q, c.hiddenSize],
    gate_proj: [c.hiddenSize, c.intermediateSize],
    up_proj: [c.hiddenSize, c.intermediateSize],
    down_proj: [c.intermediateSize, c.hiddenSize],
  };
  const layers = mode.layers === undefined ? c.numLayers : Math.min(mode.layers, c.numLayers);
  return layers * mode.targets.reduce((sum, t) => sum + mode.rank * (dims[t]![0] + dims[t]![1]), 0);
}

export function trainingStateBytes(c: ModelConfig, { mode, batch, seq, lossChunks, recomputeLayers }: StateBytesSpec): StateBytes {
  const baseParams = expectedTensors(c).reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const trainableParams = mode.kind === 'full' ? baseParams : loraParamCount(c, mode);
  const projections = expectedTensors(c)
    .filter((t) => /_proj\.weight$/.test(t.name))
    .reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  // per weight: its code, and per block of 32 a float32 scale and a zero point of `bits`
  const bitsPerWeight = mode.kind === 'lora' && mode.baseBits ? mode.baseBits + (32 + mode.baseBits) / 32 : 32;
  const frozenWeights = mode.kind === 'full' ? 0 : (baseParams - projections) * F32 + (projections * bitsPerWeight) / 8;
  const trainable = 4 * trainableParams * F32;
  const rows = batch * seq;
  // lossChunks 0 is the reference path: logits for every position at once
  const chunkRows = Math.ceil(rows / Math.max(1, lossChunks ?? lossChunkCount(c.vocabSize)));
  // the chunk's logits and their gradient (softmax − one-hot)
  const lossChunk = 2 * chunkRows * c.vocabSize * F32;
  const perLayer = rows * (8 * c.hiddenSize + 3 * c.intermediateSize) + 2 * batch * c.numHeads * seq * seq;
  const activations = (recomputeLayers ? perLayer + c.numLayers * 2 * rows * c.hiddenSize : c.numLayers * perLayer) * F32;
  return { frozenWeights, trainable, lossChunk, activations, total: frozenWeights + trainable + lossChunk + activations };
}
