// Training graphs from the same decoder definition as inference: a recording DiffGraph runs the
// plain-attention decoder on [B,S] tokens, adds the cross-entropy loss, and emits the backward pass.
// Two shapes: a train step with AdamW inside, and a gradient-only graph (for accumulation) paired
// with an optimizer-only graph.
//
//  input_ids, labels ─ decoder ─ LM head + cross-entropy (loss positions, in chunks) ─ loss
//  params ────────────┘                                   └─ backward ─ grads ─ AdamW ─ updated params, m, v
//
// No backward runs below the lowest layer with trainable parameters: the tape records only ops a
// trainable value flows into, so LoRA on the top layers (`layers`) differentiates those alone.
import type { ModelConfig } from '../config';
import type { QuantBits } from '../quantize';
import { type AdamWHyper, makeAdamW } from './adamw';
import { type DecoderContext, INITIALIZER_PARAMS, makeRmsNorm, type ParamSource, type WeightSource } from './decoder-parts';
import { makeDecoderBody } from './decoder';
import { DiffGraph, type Value } from './diff-graph';
import { GraphBuilder } from './onnx-graph';
import { randomUniform, seededRandom } from '../../random';
import { chunkedLmHeadLoss, lossChunkCount } from './loss-head';
import { crossEntropy, matmul } from './ops-nn';
import { reshape, transpose } from './ops-shape';

/** com.microsoft for MatMulNBits, the quantized base's product (QLoRA). */
export const TRAINING_OPSETS = { '': 23, 'com.microsoft': 1 };

export type LoraTarget = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';
export const LORA_TARGETS: readonly LoraTarget[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/**
 * LoRA's `layers`: adapt only the top this-many layers (all when unset). `baseBits` (QLoRA): the
 * frozen base projections as int8/int4 blocks in the inference quantizer's layout, multiplied by
 * MatMulNBits with exact compute; embedding, head, norms, LoRA factors and AdamW stay float32.
 */
export type TrainingMode = { kind: 'full' } | { kind: 'lora'; rank: number; alpha: number; targets: readonly LoraTarget[]; layers?: number; baseBits?: QuantBits };

/** Whether LoRA adapts layer `index` of `numLayers`. */
export function loraAdaptsLayer(mode: Extract<TrainingMode, { kind: 'lora' }>, index: number, numLayers: number): boolean {
  return mode.layers === undefined || index >= numLayers - mode.layers;
}

/** A parameter the training graph takes as an input and updates. */
export interface TrainableParam {
  name: string; // graph input name
  shape: number[];
  /** The HF tensor it corresponds to and whether the graph holds it transposed ([in,out] vs HF [out,in]). */
  hfName: string;
  transposed: boolean;
  /** Decoupled weight decay applies (matrices, not norms or biases). */
  decay: boolean;
  /** Initial values (from the checkpoint, or LoRA's init). */
  init: () => Float32Array;
}

export const TrainIO = {
  inputIds: 'input_ids', // int64 [B,S]
  labels: 'labels', // int64 [B,S], IGNORE_INDEX where no loss
  loss: 'loss', // float32 []
  gradNorm: 'grad_norm', // float32 []
  lr: 'lr', // float32 []
  step: 'step', // float32 [], 1-based
  grad: (p: string) => `grad.${p}`,
  m: (p: string) => `m.${p}`,
  v: (p: string) => `v.${p}`,
  updated: (p: string) => `updated.${p}`,
  updatedM: (p: string) => `updated_m.${p}`,
  updatedV: (p: string) => `updated_v.${p}`,
};

/** Full-parameter training: every weight is a trainable graph input. */
function fullParams(list: TrainableParam[]): ParamSource {
  return {
    weight(ctx, { graphName, shape, values }) {
      const v = ctx.dg.trainable(ctx.dg.value(ctx.dg.g.input(graphName, 'float32', shape), shape));
      const transposed = shape.length === 2 && graphName !== 'model.embed_tokens.weight' && graphName !== 'lm_head.weight';
      list.push({ name: graphName, shape, hfName: graphName, transposed, decay: shape.length === 2, init: values });
      return v;
    },
  };
}

/** LoRA: base weights frozen as initializers; A [r,in] (uniform ±1/√in) and B [out,r] (zeros) train. */
function loraParams(list: TrainableParam[], mode: Extract<TrainingMode, { kind: 'lora' }>, seed: number): ParamSource {
  return {
    weight: INITIALIZER_PARAMS.weight,
    lora(ctx, module, inDim, outDim) {
      if (!mode.targets.some((t) => module.endsWith(`.${t}`))) return undefined;
      const layer = Number(/\.layers\.(\d+)\./.exec(module)?.[1]);
      if (!loraAdaptsLayer(mode, layer, ctx.c.numLayers)) return undefined;
      const input = (name: string, shape: number[], init: () => Float32Array) => {
        list.push({ name, shape, hfName: name, transposed: false, decay: true, init });
        return ctx.dg.trainable(ctx.dg.value(ctx.dg.g.input(name, 'float32', shape), shape));
      };
      const r = mode.rank;
      const a = input(`${module}.lora_A.weight`, [r, inDim], () => randomUniform(seededRandom(seed * 7919 + list.length), r * inDim, 1 / Math.sqrt(inDim)));
      const b = input(`${module}.lora_B.weight`, [outDim, r], () => new Float32Array(outDim * r));
      return { a, b, scale: mode.alpha / r };
    },
  };
}

interface LossGraph {
  g: GraphBuilder;
  dg: DiffGraph;
  params: TrainableParam[];
  values: Map<string, Value>;
  loss: Value;
}

/** What a loss graph trains: the mode, the seed of LoRA's initial values, and whether to record for backward. */
interface LossGraphSpec {
  mode: TrainingMode;
  seed: number;
  recording: boolean;
  /** Chunks of loss positions the LM head works in; 0 materialises logits for every position (the reference). */
  lossChunks?: number;
  /** Each layer's activations recomputed in the backward instead of kept (DiffGraph.recomputed). */
  recomputeLayers?: boolean;
}

/** The decoder forward on [B,S] tokens with the mean next-token cross-entropy. */
function makeLossGraph(c: ModelConfig, weights: WeightSource, { mode, seed, recording, lossChunks = lossChunkCount(c.vocabSize), recomputeLayers }: LossGraphSpec): LossGraph {
  const g = new GraphBuilder('kiln_training');
  const dg = new DiffGraph(g, recording);
  const params: TrainableParam[] = [];
  const source = mode.kind === 'full' ? fullParams(params) : loraParams(params, mode, seed);
  const baseBits = mode.kind === 'lora' ? mode.baseBits : undefined;
  const quantized = baseBits ? { quantization: baseBits, quantizedAccuracyLevel: 0, embeddingElem: 'float32' as const } : {};
  const ctx: DecoderContext = { dg, c, weights, params: source, weightType: 'float32', ...quantized, ...(recomputeLayers ? { recomputeLayers } : {}) };
  const inputIds = dg.value(g.input(TrainIO.inputIds, 'int64', ['batch', 'sequence']), ['batch', 'sequence'], 'int64');
  const labels = dg.value(g.input(TrainIO.labels, 'int64', ['batch', 'sequence']), ['batch', 'sequence'], 'int64');
  const body = makeDecoderBody(ctx, inputIds, undefined, false);
  const loss = g.scope('lm_head', () => {
    const normed = makeRmsNorm(ctx, body.hidden, 'model.norm.weight', false);
    const head = c.tieWordEmbeddings
      ? body.embedTable
      : source.weight(ctx, { graphName: 'lm_head.weight', elem: 'float32', shape: [c.vocabSize, c.hiddenSize], values: () => weights.readFloat32('lm_head.weight') });
    if (lossChunks > 0) return chunkedLmHeadLoss(dg, { hidden: normed, head, labels, chunks: lossChunks });
    const logits = matmul(dg, normed, transpose(dg, head, [1, 0])); // [B,S,V]
    const flatLogits = reshape(dg, logits, [-1, c.vocabSize]); // [B·S,V]
    const flatLabels = dg.value(g.op('Reshape', [labels.name, g.int64([-1])]), ['tokens'], 'int64');
    return crossEntropy(dg, flatLogits, flatLabels);
  });
  const values = new Map<string, Value>();
  for (const p of params) values.set(p.name, dg.value(p.name, p.shape));
  return { g, dg, params, values, loss };
}

export interface BuiltTrainingGraph {
  graph: GraphBuilder;
  params: TrainableParam[];
}

/** The loss alone (validation): the same inputs as the training graphs, no backward pass. */
export function buildLossGraph(c: ModelConfig, weights: WeightSource, mode: TrainingMode, seed = 1, lossChunks?: number): BuiltTrainingGraph {
  const { g, params, loss } = makeLossGraph(c, weights, { mode, seed, recording: false, lossChunks });
  g.output(loss.name, TrainIO.loss, 'float32', []);
  return { graph: g, params };
}

/** How a gradient graph is built: LoRA's seed (default 1), the loss chunks (by vocabulary size), per-layer recomputation (off). */
export interface GradientGraphSpec {
  seed?: number;
  lossChunks?: number;
  recomputeLayers?: boolean;
}

/** loss and grad.<p> for every trainable parameter (accumulation happens outside). */
export function buildGradientGraph(
  c: ModelConfig,
  weights: WeightSource,
  mode: TrainingMode,
  { seed = 1, lossChunks, recomputeLayers }: GradientGraphSpec = {},
): BuiltTrainingGraph {
  const { g, dg, params, values, loss } = makeLossGraph(c, weights, { mode, seed, recording: true, lossChunks, recomputeLayers });
  const grads = dg.backward(loss, [...values.values()]);
  g.output(loss.name, TrainIO.loss, 'float32', []);
  for (const p of params) g.output(grads.get(p.name)!.name, TrainIO.grad(p.name), 'float32', p.shape);
  return { graph: g, params };
}

function optimizerInputs(g: GraphBuilder, params: TrainableParam[]) {
  return {
    lr: g.input(TrainIO.lr, 'float32', []),
    step: g.input(TrainIO.step, 'float32', []),
    moments: params.map((p) => ({ m: g.input(TrainIO.m(p.name), 'float32', p.shape), v: g.input(TrainIO.v(p.name), 'float32', p.shape) })),
  };
}

function optimizerOutputs(g: GraphBuilder, params: TrainableParam[], result: ReturnType<typeof makeAdamW>): void {
  g.output(result.gradNorm, TrainIO.gradNorm, 'float32', []);
  params.forEach((p, i) => {
    const u = result.updated[i]!;
    g.output(u.param, TrainIO.updated(p.name), 'float32', p.shape);
    g.output(u.m, TrainIO.updatedM(p.name), 'float32', p.shape);
    g.output(u.v, TrainIO.updatedV(p.name), 'float32', p.shape);
  });
}

export interface TrainStepSpec {
  mode: TrainingMode;
  hyper: AdamWHyper;
  /** Seeds LoRA's initial values (default 1). */
  seed?: number;
  /** See LossGraphSpec.lossChunks (default: by vocabulary size). */
  lossChunks?: number;
  /** See LossGraphSpec.recomputeLayers (default off). */
  recomputeLayers?: boolean;
}

/** One training step in one graph: forward, backward, clipping and AdamW. */
export function buildTrainStepGraph(c: ModelConfig, weights: WeightSource, { mode, hyper, seed = 1, lossChunks, recomputeLayers }: TrainStepSpec): BuiltTrainingGraph {
  const { g, dg, params, values, loss } = makeLossGraph(c, weights, { mode, seed, recording: true, lossChunks, recomputeLayers });
  const grads = dg.backward(loss, [...values.values()]);
  const io = optimizerInputs(g, params);
  const slots = params.map((p, i) => ({ param: p.name, grad: grads.get(p.name)!.name, m: io.moments[i]!.m, v: io.moments[i]!.v, decay: p.decay }));
  g.output(loss.name, TrainIO.loss, 'float32', []);
  optimizerOutputs(g, params, makeAdamW(g, { slots, lr: io.lr, step: io.step, hyper }));
  return { graph: g, params };
}

/** AdamW alone, over accumulated gradients fed as grad.<p> inputs. */
export function buildOptimizerGraph(params: TrainableParam[], hyper: AdamWHyper): GraphBuilder {
  const g = new GraphBuilder('kiln_optimizer');
  const io = optimizerInputs(g, params);
  const slots = params.map((p, i) => ({
    param: g.input(p.name, 'float32', p.shape),
    grad: g.input(TrainIO.grad(p.name), 'float32', p.shape),
    m: io.moments[i]!.m,
    v: io.moments[i]!.v,
    decay: p.decay,
  }));
  optimizerOutputs(g, params, makeAdamW(g, { slots, lr: io.lr, step: io.step, hyper }));
  return g;
}
