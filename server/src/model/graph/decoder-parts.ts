// Subgraph makers shared by both attention paths and by inference and training: linear layers
// (with optional LoRA), RMSNorm, the SwiGLU MLP, RoPE tables. They are written with the
// differentiable ops, so a recording DiffGraph turns the same code into a training graph.
import type { ModelConfig } from '../config';
import { float32ToHalfArray } from '../half';
import type { QuantBits } from '../quantize';
import type { DiffGraph, Value } from './diff-graph';
import type { ElemType } from './onnx-graph';
import type { ParallelQuantizer } from './parallel-quantize';
import { add, cast, mul, reciprocal, silu, sqrt } from './ops-elementwise';
import { matmul, meanLastAxis } from './ops-nn';
import { addLoraSideProducts } from './lora-side-product';
import { split } from './ops-shape';
import { quantizedMatMul } from './quantized-matmul';

/** Where the builder gets HF weights from: one tensor at a time, as float32. */
export interface WeightSource {
  readFloat32(name: string): Float32Array;
  /** readFloat32 into the caller's buffer (exactly the tensor's length), for a source that can skip its own copy. */
  readFloat32Into?(name: string, out: Float32Array): void;
  /** float32ToHalfArray(readFloat32(name)) bit for bit, for a source that can convert without float32. */
  readHalfBits?(name: string): Uint16Array;
  /** Rows [first, first + out.length / row length) of a tensor (along its first axis) into `out`, as readFloat32 has them. */
  readRowsInto?(name: string, first: number, out: Float32Array): void;
}

/**
 * Rows of tensors `names` stacked along their first axis (`rows[j]` rows of `rowLength` values each),
 * read straight from the source a range at a time, or undefined when the source cannot read ranges.
 */
export function stackedRowReader(weights: WeightSource, names: string[], rows: number[], rowLength: number): ((first: number, out: Float32Array) => void) | undefined {
  const readRows = weights.readRowsInto?.bind(weights);
  if (!readRows) return undefined;
  return (first, out) => {
    const count = out.length / rowLength;
    let start = 0; // the first stacked row of tensor j
    names.forEach((name, j) => {
      const from = Math.max(first, start);
      const to = Math.min(first + count, start + rows[j]!);
      if (from < to) readRows(name, from - start, out.subarray((from - first) * rowLength, (to - first) * rowLength));
      start += rows[j]!;
    });
  };
}

/** Tensor `name` of `weights` into `out` (its exact length). */
export function readWeightInto(weights: WeightSource, name: string, out: Float32Array): void {
  if (weights.readFloat32Into) weights.readFloat32Into(name, out);
  else out.set(weights.readFloat32(name));
}

/** Tensor `name` of `weights` as IEEE half bits. */
export function readWeightHalfBits(weights: WeightSource, name: string): Uint16Array {
  return weights.readHalfBits ? weights.readHalfBits(name) : float32ToHalfArray(weights.readFloat32(name));
}

/** A LoRA pair for one projection, PEFT layout: A [r, in], B [out, r], delta = x·Aᵀ·Bᵀ·scale. */
export interface LoraPair {
  a: Value;
  b: Value;
  scale: number;
}

/** A weight with its graph name, element type, shape and lazily produced values. */
export interface WeightSpec {
  graphName: string;
  elem: ElemType;
  shape: number[];
  values: () => Float32Array;
  /** The float16 bits of values(), by a shorter way (a 16-bit checkpoint converted without float32). */
  halfBits?: () => Uint16Array;
}

/** How weights become graph values: initializers for inference, trainable inputs for training. */
export interface ParamSource {
  weight(ctx: DecoderContext, spec: WeightSpec): Value;
  /** LoRA for an HF module (e.g. `model.layers.0.self_attn.q_proj`), or undefined when not adapted. */
  lora?(ctx: DecoderContext, hfModule: string, inDim: number, outDim: number): LoraPair | undefined;
}

export interface DecoderContext {
  dg: DiffGraph;
  c: ModelConfig;
  weights: WeightSource;
  params: ParamSource;
  /** Element type of the big matrices in the graph; norms, biases and activations stay float32. */
  weightType: ElemType;
  /** Linear weights (and, for inference, the LM head) as block-quantized MatMulNBits codes; frozen. */
  quantization?: QuantBits;
  /** MatMulNBits' accuracy_level for the quantized Linear weights (default: by bits; 0 is exact). */
  quantizedAccuracyLevel?: number;
  /** Codes half of each large int8 weight on a second thread, reading `weights`' checkpoint itself (inference builds). */
  parallelQuantizer?: ParallelQuantizer;
  /** The embedding table's type when set (training keeps it float32: it is the tied LM head too). */
  embeddingElem?: ElemType;
  /** Training: each layer's activations are recomputed in the backward from its input (DiffGraph.recomputed), not kept. */
  recomputeLayers?: boolean;
}

/** The embedding table's type: float16 beside quantized matrices, where float32 would dominate memory. */
export function embeddingType(ctx: DecoderContext): ElemType {
  return ctx.embeddingElem ?? (ctx.quantization ? 'float16' : ctx.weightType);
}

/** Inference: every weight is a frozen initializer. */
export const INITIALIZER_PARAMS: ParamSource = {
  weight(ctx, { graphName, elem, shape, values, halfBits }) {
    const bytes = () => (elem === 'float16' ? (halfBits ? halfBits() : float32ToHalfArray(values())) : values());
    return ctx.dg.value(ctx.dg.g.weight(graphName, elem, shape, bytes), shape, elem);
  },
};

/**
 * HF Linear weights [out, in] -> one MatMul weight [in, sum(out)]; several HF tensors are fused
 * side by side (q|k|v, gate|up). Only the fused result is held, one tensor at a time.
 */
export function fusedTransposed(weights: WeightSource, names: string[], inDim: number, outDims: number[]): Float32Array {
  const total = outDims.reduce((a, b) => a + b, 0);
  const out = new Float32Array(inDim * total); // [in, total]
  let col = 0;
  names.forEach((name, k) => {
    const w = weights.readFloat32(name); // [out_k, in]
    const outK = outDims[k]!;
    for (let o = 0; o < outK; o++) {
      for (let i = 0; i < inDim; i++) out[i * total + col + o] = w[o * inDim + i]!;
    }
    col += outK;
  });
  return out;
}

/** Tensors `names` of `sizes` values each, end to end in `out`, each read straight into its place. */
function concatenated(weights: WeightSource, names: string[], sizes: number[], out: Float32Array = new Float32Array(sizes.reduce((a, b) => a + b, 0))): Float32Array {
  let at = 0;
  names.forEach((name, i) => {
    readWeightInto(weights, name, out.subarray(at, at + sizes[i]!));
    at += sizes[i]!;
  });
  if (at !== out.length) throw new Error(`${names.join(', ')}: ${at} values for a buffer of ${out.length}`);
  return out;
}

/** One projection: its node name, the HF weights fused side by side, and its sizes. */
export interface LinearSpec {
  graphName: string;
  hfNames: string[];
  inDim: number;
  /** One output size per HF weight; the output is their concatenation. */
  outDims: number[];
  biasNames?: string[];
}

/**
 *   x [B,S,in] ─(Cast f16)─ MatMul(W [in,out]) ─(Cast f32)─ (+ bias) (+ x·Aᵀ·Bᵀ·scale) ─> [B,S,out]
 * (MatMulNBits on int8/int4 codes in place of the MatMul when quantized). `hfNames` lists the HF
 * weights fused side by side; LoRA is a side product per HF module (lora-side-product.ts).
 */
export function makeLinear(ctx: DecoderContext, x: Value, { graphName, hfNames, inDim, outDims, biasNames }: LinearSpec): Value {
  const { dg } = ctx;
  const total = outDims.reduce((a, b) => a + b, 0);
  let y: Value;
  if (ctx.quantization) {
    // HF weights [out_k, in] stacked row-wise are the fused [total, in] MatMulNBits wants
    y = quantizedMatMul(dg, x, {
      graphName,
      bits: ctx.quantization,
      n: total,
      k: inDim,
      rows: (into) =>
        concatenated(
          ctx.weights,
          hfNames,
          outDims.map((o) => o * inDim),
          into,
        ),
      readRows: stackedRowReader(ctx.weights, hfNames, outDims, inDim),
      ...(ctx.parallelQuantizer ? { parallel: { quantizer: ctx.parallelQuantizer, stacked: { names: hfNames, rows: outDims } } } : {}),
      accuracyLevel: ctx.quantizedAccuracyLevel,
    });
  } else {
    const w = ctx.params.weight(ctx, {
      graphName: `${graphName}.weight`,
      elem: ctx.weightType,
      shape: [inDim, total],
      values: () => fusedTransposed(ctx.weights, hfNames, inDim, outDims),
    });
    y = ctx.weightType === 'float16' ? cast(dg, matmul(dg, cast(dg, x, 'float16'), w), 'float32') : matmul(dg, x, w);
  }
  if (biasNames)
    y = add(dg, y, ctx.params.weight(ctx, { graphName: `${graphName}.bias`, elem: 'float32', shape: [total], values: () => concatenated(ctx.weights, biasNames, outDims) }));
  return addLoraSideProducts(
    ctx,
    x,
    y,
    hfNames.map((n) => n.replace(/\.weight$/, '')),
    inDim,
    outDims,
  );
}

/** A norm's weight [d], float32 in every precision. */
function normWeight(ctx: DecoderContext, hfName: string): Value {
  return ctx.params.weight(ctx, { graphName: hfName, elem: 'float32', shape: [ctx.c.hiddenSize], values: () => ctx.weights.readFloat32(hfName) });
}

/**
 * RMSNorm over the last axis, HF style: x * rsqrt(mean(x²) + eps) * w.
 * `fused` uses the opset-23 RMSNormalization kernel (inference only); otherwise differentiable ops.
 */
export function makeRmsNorm(ctx: DecoderContext, x: Value, hfName: string, fused: boolean): Value {
  const { dg, c } = ctx;
  const w = normWeight(ctx, hfName);
  return dg.g.scope('norm', () => {
    if (fused) return dg.emit({ op: 'RMSNormalization', inputs: [x, w], attrs: { axis: -1, epsilon: { float: c.rmsNormEps } }, outShapes: [x.shape] })[0]!;
    const meanSquare = meanLastAxis(dg, mul(dg, x, x)); // [B,S,1]
    const inv = reciprocal(dg, sqrt(dg, add(dg, meanSquare, dg.scalar(c.rmsNormEps))));
    return mul(dg, mul(dg, x, inv), w);
  });
}

/**
 * Inference only: sum = residual + delta and RMSNorm(sum) in one com.microsoft
 * SkipSimplifiedLayerNormalization kernel (a step's ~50 norms and residual adds would be ~300 nodes).
 */
export function makeSkipRmsNorm(ctx: DecoderContext, delta: Value, residual: Value, hfName: string): { normed: Value; sum: Value } {
  const { dg, c } = ctx;
  const w = normWeight(ctx, hfName);
  return dg.g.scope('norm', () => {
    const [normed, , , sum] = dg.g.node(
      'SkipSimplifiedLayerNormalization',
      [delta.name, residual.name, w.name],
      { epsilon: { float: c.rmsNormEps } },
      { domain: 'com.microsoft', outputs: 4 },
    );
    return { normed: dg.value(normed!, delta.shape), sum: dg.value(sum!, delta.shape) };
  });
}

/**
 *   h ─┬─ gate_proj ─ SiLU ─┐
 *      └─ up_proj ─────────Mul ─ down_proj ─> [B,S,d]
 * `fused` runs gate and up as one MatMul (inference); unfused keeps them apart for LoRA.
 */
export function makeMlp(ctx: DecoderContext, h: Value, layer: number, fused: boolean): Value {
  const { dg, c } = ctx;
  const p = `model.layers.${layer}.mlp`;
  const I = c.intermediateSize;
  return dg.g.scope('mlp', () => {
    let gate: Value;
    let up: Value;
    if (fused) {
      const gateUp = dg.g.scope('gate_up_proj', () =>
        makeLinear(ctx, h, { graphName: `${p}.gate_up_proj`, hfNames: [`${p}.gate_proj.weight`, `${p}.up_proj.weight`], inDim: c.hiddenSize, outDims: [I, I] }),
      ); // [B,S,2I]
      [gate, up] = split(dg, gateUp, [I, I], -1) as [Value, Value];
    } else {
      gate = dg.g.scope('gate_proj', () => makeLinear(ctx, h, { graphName: `${p}.gate_proj`, hfNames: [`${p}.gate_proj.weight`], inDim: c.hiddenSize, outDims: [I] }));
      up = dg.g.scope('up_proj', () => makeLinear(ctx, h, { graphName: `${p}.up_proj`, hfNames: [`${p}.up_proj.weight`], inDim: c.hiddenSize, outDims: [I] }));
    }
    const act = mul(dg, silu(dg, gate), up); // [B,S,I]
    return dg.g.scope('down_proj', () => makeLinear(ctx, act, { graphName: `${p}.down_proj`, hfNames: [`${p}.down_proj.weight`], inDim: I, outDims: [c.hiddenSize] }));
  });
}

/** RoPE inverse frequencies theta^(-2i/D), i < D/2, as HF computes them. */
export function ropeInverseFrequencies(c: ModelConfig): number[] {
  const D = c.headDim;
  return Array.from({ length: D / 2 }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / D));
}

/**
 * Positions the RotaryEmbedding tables cover at most: far beyond any prompt or training sequence Kiln
 * builds, and it keeps a config's max_position_embeddings (bounded at 10M) from sizing GBs of tables.
 */
export const ROPE_TABLE_POSITIONS = 131_072;

/** cos/sin tables [min(maxPositions, ROPE_TABLE_POSITIONS), D/2] for com.microsoft RotaryEmbedding (positions / linear factor). */
export function ropeCaches(c: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInverseFrequencies(c);
  const half = inv.length;
  const positions = Math.min(c.maxPositions, ROPE_TABLE_POSITIONS);
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      // float32 angle, as HF computes it, so long positions round the same way
      const angle = Math.fround(Math.fround(p / c.ropeLinearFactor) * Math.fround(inv[i]!));
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
