// Subgraph makers shared by both attention paths: linear layers, RMSNorm, the SwiGLU MLP, RoPE tables.
import type { ModelConfig } from '../config';
import { float32ToHalfArray } from '../half';
import type { ElemType, GraphBuilder } from './onnx-graph';

/** Where the builder gets HF weights from: one tensor at a time, as float32. */
export interface WeightSource {
  readFloat32(name: string): Float32Array;
}

export interface DecoderContext {
  g: GraphBuilder;
  c: ModelConfig;
  weights: WeightSource;
  /** Element type of the big matrices in the graph; norms, biases and activations stay float32. */
  weightType: ElemType;
}

const TO_FLOAT16 = 10;
const TO_FLOAT32 = 1;

/**
 * HF Linear weights [out, in] -> one MatMul weight [in, sum(out)]; several HF tensors are fused
 * side by side (q|k|v, gate|up). Only the fused result is held, one tensor at a time.
 */
function fusedTransposed(weights: WeightSource, names: string[], inDim: number, outDims: number[]): Float32Array {
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

/** Registers a matrix weight in the graph's weight type. */
export function matrixWeight(ctx: DecoderContext, graphName: string, shape: number[], values: () => Float32Array): string {
  return ctx.g.weight(graphName, ctx.weightType, shape, () => (ctx.weightType === 'float16' ? float32ToHalfArray(values()) : values()));
}

/** Concatenates HF bias vectors into one float32 initializer. */
function fusedBias(weights: WeightSource, names: string[]): Float32Array {
  const parts = names.map((n) => weights.readFloat32(n));
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 *   x [B,S,in] ─(Cast f16)─ MatMul(W [in,out]) ─(Cast f32)─ (+ bias) ─> [B,S,out]
 * `hfNames` lists the HF weights fused side by side; `biasNames` their biases, if any.
 */
export function makeLinear(ctx: DecoderContext, x: string, graphName: string, hfNames: string[], inDim: number, outDims: number[], biasNames?: string[]): string {
  const { g } = ctx;
  const total = outDims.reduce((a, b) => a + b, 0);
  const w = matrixWeight(ctx, `${graphName}.weight`, [inDim, total], () => fusedTransposed(ctx.weights, hfNames, inDim, outDims));
  let y: string;
  if (ctx.weightType === 'float16') {
    const x16 = g.op('Cast', [x], { to: TO_FLOAT16 });
    y = g.op('Cast', [g.op('MatMul', [x16, w])], { to: TO_FLOAT32 });
  } else {
    y = g.op('MatMul', [x, w]);
  }
  if (!biasNames) return y;
  const b = g.weight(`${graphName}.bias`, 'float32', [total], () => fusedBias(ctx.weights, biasNames));
  return g.op('Add', [y, b]);
}

/**
 * RMSNorm over the last axis, HF style: x * rsqrt(mean(x²) + eps) * w.
 * `fused` uses the opset-23 RMSNormalization kernel; otherwise plain ops (differentiable by Kiln's rules).
 */
export function makeRmsNorm(ctx: DecoderContext, x: string, graphName: string, hfName: string, fused: boolean): string {
  const { g, c } = ctx;
  const w = g.weight(graphName, 'float32', [c.hiddenSize], () => ctx.weights.readFloat32(hfName));
  return g.scope('norm', () => {
    if (fused) return g.op('RMSNormalization', [x, w], { axis: -1, epsilon: { float: c.rmsNormEps } });
    const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x]), g.int64([-1])], { keepdims: 1 }); // [B,S,1]
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSquare, g.float32([c.rmsNormEps], [])])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), w]);
  });
}

/**
 *   h ─ gate_up ─ Split ─┬─ gate ─ SiLU ─┐
 *                        └─ up ──────────Mul ─ down_proj ─> [B,S,d]
 */
export function makeMlp(ctx: DecoderContext, h: string, layer: number): string {
  const { g, c } = ctx;
  const p = `model.layers.${layer}.mlp`;
  return g.scope('mlp', () => {
    const I = c.intermediateSize;
    const gateUp = g.scope('gate_up_proj', () => makeLinear(ctx, h, `${p}.gate_up_proj`, [`${p}.gate_proj.weight`, `${p}.up_proj.weight`], c.hiddenSize, [I, I])); // [B,S,2I]
    const [gate, up] = g.node('Split', [gateUp, g.int64([I, I])], { axis: -1 }, { outputs: 2 });
    const silu = g.op('Mul', [gate!, g.op('Sigmoid', [gate!])]);
    const act = g.op('Mul', [silu, up!]); // [B,S,I]
    return g.scope('down_proj', () => makeLinear(ctx, act, `${p}.down_proj`, [`${p}.down_proj.weight`], I, [c.hiddenSize]));
  });
}

/** RoPE inverse frequencies theta^(-2i/D), i < D/2, as HF computes them. */
export function ropeInverseFrequencies(c: ModelConfig): number[] {
  const D = c.headDim;
  return Array.from({ length: D / 2 }, (_, i) => 1 / Math.pow(c.ropeTheta, (2 * i) / D));
}

/** cos/sin tables [maxPositions, D/2] for com.microsoft RotaryEmbedding (positions / linear factor). */
export function ropeCaches(c: ModelConfig): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInverseFrequencies(c);
  const half = inv.length;
  const cos = new Float32Array(c.maxPositions * half);
  const sin = new Float32Array(c.maxPositions * half);
  for (let p = 0; p < c.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      // float32 angle, as HF computes it, so long positions round the same way
      const angle = Math.fround(Math.fround(p / c.ropeLinearFactor) * Math.fround(inv[i]!));
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
