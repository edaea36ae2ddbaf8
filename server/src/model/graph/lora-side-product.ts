// LoRA as a side product beside a frozen base projection, never merged into its weights, so the base
// may be anything that maps x to x·Wᵀ — MatMul on fp32/fp16 weights or MatMulNBits on int8/int4
// codes — and an adapter's graph can share the base graph's weight file instead of copying it:
//
//   x [..,in] ─ base(x) ─────────────────────────────────┐
//        └──── MatMul(Aᵀ [in,r]) ─ MatMul(Bᵀ [r,out]) ─ ·scale ─ Add ─> y [..,out]
//
// The same code builds the inference graph (A, B frozen initializers) and, under a recording
// DiffGraph, the training graph (A, B trainable inputs): the ops are the differentiable ones.
// Training on a quantized base (QLoRA) also needs the base's backward with respect to x
// (grad_x = grad_y · W, W dequantized): quantized-matmul.ts emits MatMulNBits with g.op, outside
// the DiffGraph's rules, so that rule has to be added there before a recording graph may use it.
import type { DecoderContext, LoraPair, ParamSource } from './decoder-parts';
import type { DiffGraph, Value } from './diff-graph';
import { add, mul } from './ops-elementwise';
import { matmul } from './ops-nn';
import { concat, split, transpose } from './ops-shape';

/**
 * scale · (x·Aᵀ)·Bᵀ for one projection: x [..,in], A [r,in], B [out,r] (PEFT layouts) -> [..,out].
 * Down to rank r first, so the cost is r·(in+out) per position, not in·out. A scale of 1 emits no Mul
 * (the inference builder folds the scale into B).
 */
export function makeLoraSideProduct(dg: DiffGraph, x: Value, { a, b, scale }: LoraPair): Value {
  const down = matmul(dg, x, transpose(dg, a, [1, 0])); // [..,r]
  const up = matmul(dg, down, transpose(dg, b, [1, 0])); // [..,out]
  return scale === 1 ? up : mul(dg, up, dg.scalar(scale));
}

/**
 * Adds the LoRA side products of a projection to its base output y [..,sum(outDims)]. A projection
 * fused from several HF modules (q|k|v, gate|up) is split, each adapted part gets its own side
 * product, and the parts are concatenated again; an unadapted projection is returned as is.
 */
export function addLoraSideProducts(ctx: DecoderContext, x: Value, y: Value, modules: string[], inDim: number, outDims: number[]): Value {
  const { dg } = ctx;
  const pairs = modules.map((m, k) => ctx.params.lora?.(ctx, m, inDim, outDims[k]!));
  if (pairs.every((p) => p === undefined)) return y;
  if (modules.length === 1) return add(dg, y, makeLoraSideProduct(dg, x, pairs[0]!));
  const parts = split(dg, y, outDims, -1); // [..,out_k] each
  return concat(
    dg,
    parts.map((part, k) => (pairs[k] ? add(dg, part, makeLoraSideProduct(dg, x, pairs[k])) : part)),
    -1,
  ); // [..,sum(outDims)]
}

/** A LoRA adapter's factors as the inference graph needs them: `<module>.lora_A.weight` -> A [r,in], `lora_B` -> B [out,r]. */
export interface LoraFactorSet {
  tensors: ReadonlyMap<string, Float32Array>;
  rank: number;
  /** What B·A is multiplied by (alpha / r, or alpha / √r for rsLoRA). */
  scale: number;
}

/** Graph names of the LoRA initializers, kept apart from every base weight's name. */
export const loraInitializerName = (module: string, which: 'A' | 'B') => `${module}.lora_${which}.weight`;

/**
 * Inference with an adapter: base weights as `base` makes them, LoRA factors as frozen initializers,
 * the scale folded into B (B' = scale·B, one Mul fewer per projection and step).
 */
export function adapterParams(base: ParamSource, factors: LoraFactorSet): ParamSource {
  return {
    weight: base.weight,
    lora(ctx, module, inDim, outDim) {
      const a = factors.tensors.get(loraInitializerName(module, 'A'));
      const b = factors.tensors.get(loraInitializerName(module, 'B'));
      if (!a || !b) return undefined;
      const r = factors.rank;
      if (a.length !== r * inDim || b.length !== outDim * r) {
        throw new Error(`${module}: LoRA factors of ${a.length} and ${b.length} values do not fit A [${r}, ${inDim}] and B [${outDim}, ${r}]`);
      }
      const { g } = ctx.dg;
      const aName = g.weight(loraInitializerName(module, 'A'), 'float32', [r, inDim], () => a);
      const bName = g.weight(loraInitializerName(module, 'B'), 'float32', [outDim, r], () => b.map((v) => v * factors.scale));
      return { a: ctx.dg.value(aName, [r, inDim]), b: ctx.dg.value(bName, [outDim, r]), scale: 1 };
    },
  };
}
