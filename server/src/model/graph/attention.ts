// Self-attention with a KV cache, in two forms that share inputs and outputs:
//  - plain ops (portable on every execution provider; differentiable, so training uses it),
//  - com.microsoft RotaryEmbedding + GroupQueryAttention (ORT's fused CPU kernels, inference only).
// The past crosses the graph boundary in the layouts attention reads, keys [B,Hkv,D,P] and values
// [B,Hkv,P,D] (P a padded capacity, masked per row), so no layer transposes the cache on a step;
// the S new positions come back position-major [B,S,Hkv*D] and the caller appends them in place.
import type { Value } from './diff-graph';
import { type DecoderContext, makeLinear } from './decoder-parts';
import { add, mul, neg } from './ops-elementwise';
import { matmul, softmaxLastAxis } from './ops-nn';
import { concat, reshape, split, transpose, unsqueeze } from './ops-shape';

export interface AttentionInputs {
  h: Value; // normed hidden [B,S,d]
  /** Past keys [B,Hkv,D,P] and values [B,Hkv,P,D]; absent in training graphs (P = 0). */
  past?: { key: Value; value: Value };
  /** Plain path: RoPE tables [S, D] or per row [B, S, D], and the mask bias [S, P+S] or [B, 1, 1, S, P+S], shared by all layers. */
  rope?: { cos: Value; sin: Value };
  causalBias?: Value;
  /** Plain path with a past (inference): tables for com.microsoft RotaryEmbedding, in place of `rope`. */
  rotary?: RotaryTables;
  /** Fused path: RoPE caches [maxPos, D/2], position ids int64 [B,S], seqlens_k int32 [B] = P+S-1, total int32 scalar. */
  fused?: { cosCache: string; sinCache: string; positionIds: string; seqlensK: string; totalLength: string };
}

/** RotaryEmbedding inputs: position ids int64 [B,S] into cos/sin caches [rows, D/2]; the query's carry 1/√D. */
export interface RotaryTables {
  positionIds: string;
  cos: string;
  sin: string;
  cosQuery: string;
  sinQuery: string;
}

export interface AttentionOutputs {
  out: Value; // [B,S,d] after o_proj
  newKey: Value; // [B,S,Hkv*D] rotated keys of the new positions
  newValue: Value; // [B,S,Hkv*D]
}

/** A layer's query, key and value projections of the hidden state, [B,S,H*D] and [B,S,Hkv*D]. */
interface Projections {
  q: Value;
  k: Value;
  v: Value;
}

function qkvProjections(ctx: DecoderContext, h: Value, layer: number, fused: boolean): Projections {
  const { dg, c } = ctx;
  const p = `model.layers.${layer}.self_attn`;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  if (!fused) {
    const proj = (n: string, out: number) =>
      dg.g.scope(`${n}_proj`, () =>
        makeLinear(ctx, h, {
          graphName: `${p}.${n}_proj`,
          hfNames: [`${p}.${n}_proj.weight`],
          inDim: c.hiddenSize,
          outDims: [out],
          biasNames: c.attentionBias ? [`${p}.${n}_proj.bias`] : undefined,
        }),
      );
    return { q: proj('q', qd), k: proj('k', kvd), v: proj('v', kvd) };
  }
  const biases = c.attentionBias ? ['q', 'k', 'v'].map((n) => `${p}.${n}_proj.bias`) : undefined;
  const qkv = dg.g.scope('qkv_proj', () =>
    makeLinear(ctx, h, {
      graphName: `${p}.qkv_proj`,
      hfNames: ['q', 'k', 'v'].map((n) => `${p}.${n}_proj.weight`),
      inDim: c.hiddenSize,
      outDims: [qd, kvd, kvd],
      biasNames: biases,
    }),
  ); // [B,S,(H+2Hkv)D]
  const [q, k, v] = split(dg, qkv, [qd, kvd, kvd], -1) as [Value, Value, Value];
  return { q, k, v };
}

/** x [B,S,N*D] -> rotate_half RoPE -> [B,S,N,D], with cos/sin [S,D] (shared) or [B,S,D] (per row). */
function applyRope(ctx: DecoderContext, x: Value, heads: number, rope: { cos: Value; sin: Value }): Value {
  const { dg, c } = ctx;
  const D = c.headDim;
  const x4 = reshape(dg, x, [0, 0, heads, D]); // [B,S,N,D]
  const headAxis = rope.cos.shape.length - 1; // before D: [S,1,D] or [B,S,1,D]
  const cos = unsqueeze(dg, rope.cos, [headAxis]);
  const sin = unsqueeze(dg, rope.sin, [headAxis]);
  const [x1, x2] = split(dg, x4, [D / 2, D / 2], -1) as [Value, Value];
  const rotated = concat(dg, [neg(dg, x2), x1], -1); // rotate_half
  return add(dg, mul(dg, x4, cos), mul(dg, rotated, sin));
}

/** RoPE by plain ops (differentiable): the query pre-scaled by 1/√D [B,S,H,D], the keys [B,S,Hkv*D]. */
function plainRope(ctx: DecoderContext, q: Value, k: Value, rope: { cos: Value; sin: Value }): { qRot: Value; newKey: Value } {
  const { dg, c } = ctx;
  const qRot = mul(dg, applyRope(ctx, q, c.numHeads, rope), dg.scalar(1 / Math.sqrt(c.headDim))); // [B,S,H,D]
  return { qRot, newKey: reshape(dg, applyRope(ctx, k, c.numKvHeads, rope), [0, 0, c.numKvHeads * c.headDim]) };
}

/** RoPE by com.microsoft RotaryEmbedding (inference): the query pre-scaled through its tables [B,S,H*D], the keys [B,S,Hkv*D]. */
function rotaryKernel(ctx: DecoderContext, q: Value, k: Value, t: RotaryTables): { qRot: Value; newKey: Value } {
  const { g } = ctx.dg;
  const ms = 'com.microsoft';
  const qRot = g.op('RotaryEmbedding', [q.name, t.positionIds, t.cosQuery, t.sinQuery], { interleaved: 0 }, ms);
  const newKey = g.op('RotaryEmbedding', [k.name, t.positionIds, t.cos, t.sin], { interleaved: 0 }, ms);
  return { qRot: ctx.dg.value(qRot, q.shape), newKey: ctx.dg.value(newKey, k.shape) };
}

/**
 *  q ─RoPE─ [B,Hkv,G,S,D] ─┐
 *  k ─RoPE──────────────── MatMul ─ + causal bias ─ Softmax ─ MatMul(v) ─ [B,S,H*D]      (no past: training)
 *
 *  q ─┬─ MatMul(past_kᵀ) [B,Hkv,G,S,P] ─┐
 *     └─ MatMul(kᵀ)      [B,Hkv,G,S,S] ─ Concat ─ + mask bias ─ Softmax ─┬─ [..,:P] MatMul(past_v) ─┐
 *                                                                        └─ [..,P:] MatMul(v) ────── Add ─ [B,S,H*D]
 * With a past, the scores of past and new keys are computed apart and only the small score tensors
 * are concatenated: the cache arrives in the layouts the two MatMuls read (keys [B,Hkv,D,P], values
 * [B,Hkv,P,D]), so it is read once and never transposed or copied into a past ⊕ new tensor.
 */
function plainAttention(ctx: DecoderContext, { q, k, v }: Projections, a: AttentionInputs): { attn: Value; newKey: Value } {
  const { dg, c } = ctx;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const G = H / Hkv;
  const D = c.headDim;
  if (!(a.rope || a.rotary) || !a.causalBias) throw new Error('plain attention needs RoPE tables and a causal bias');
  const { qRot, newKey } = a.rotary ? rotaryKernel(ctx, q, k, a.rotary) : plainRope(ctx, q, k, a.rope!);
  const q5 = transpose(dg, reshape(dg, qRot, [0, 0, Hkv, G, D]), [0, 2, 3, 1, 4]); // [B,Hkv,G,S,D]
  const keysT = (x: Value) => unsqueeze(dg, transpose(dg, reshape(dg, x, [0, 0, Hkv, D]), [0, 2, 3, 1]), [2]); // [B,Hkv,1,D,T]
  const values = (x: Value) => unsqueeze(dg, transpose(dg, reshape(dg, x, [0, 0, Hkv, D]), [0, 2, 1, 3]), [2]); // [B,Hkv,1,T,D]
  const merge = (ctx5: Value) => reshape(dg, transpose(dg, ctx5, [0, 3, 1, 2, 4]), [0, 0, H * D]); // [B,Hkv,G,S,D] -> [B,S,H*D]
  if (!a.past) {
    const probs = softmaxLastAxis(dg, add(dg, matmul(dg, q5, keysT(newKey)), a.causalBias)); // [B,Hkv,G,S,S]
    return { attn: merge(matmul(dg, probs, values(v))), newKey };
  }
  // Inference only (no gradients through the past): plain ops on the graph.
  const { g } = dg;
  const scoresPast = matmul(dg, q5, unsqueeze(dg, a.past.key, [2])); // [B,Hkv,1,D,P] -> [B,Hkv,G,S,P]
  const scoresNew = matmul(dg, q5, keysT(newKey)); // [B,Hkv,G,S,S]
  const scores = dg.value(g.op('Concat', [scoresPast.name, scoresNew.name], { axis: -1 }), [...scoresNew.shape.slice(0, -1), 'total_sequence']); // [B,Hkv,G,S,T]
  const probs = softmaxLastAxis(dg, add(dg, scores, a.causalBias));
  const P = g.op('Slice', [g.op('Shape', [a.past.value.name]), g.int64([2]), g.int64([3])]); // [1] = P
  const probsPast = dg.value(g.op('Slice', [probs.name, g.int64([0]), P, g.int64([-1])]), scoresPast.shape); // [B,Hkv,G,S,P]
  const probsNew = dg.value(g.op('Slice', [probs.name, P, g.int64([2 ** 62]), g.int64([-1])]), scoresNew.shape); // [B,Hkv,G,S,S]
  const ctx5 = add(dg, matmul(dg, probsPast, unsqueeze(dg, a.past.value, [2])), matmul(dg, probsNew, values(v))); // [B,Hkv,G,S,D]
  return { attn: merge(ctx5), newKey };
}

/** RotaryEmbedding + GroupQueryAttention; the kernel reads the past BNSH [B,Hkv,P,D], so only the keys are transposed. */
function fusedAttention(ctx: DecoderContext, { q, k, v }: Projections, a: AttentionInputs): { attn: Value; newKey: Value } {
  const { dg, c } = ctx;
  const { g } = dg;
  const Hkv = c.numKvHeads;
  const D = c.headDim;
  const ms = 'com.microsoft';
  if (!a.fused || !a.past) throw new Error('fused attention needs RoPE caches, sequence lengths and a past');
  const { cosCache, sinCache, positionIds, seqlensK, totalLength } = a.fused;
  const qRot = g.op('RotaryEmbedding', [q.name, positionIds, cosCache, sinCache], { interleaved: 0 }, ms); // [B,S,H*D]
  const newKey = g.op('RotaryEmbedding', [k.name, positionIds, cosCache, sinCache], { interleaved: 0 }, ms); // [B,S,Hkv*D]
  const pastKeyBnsh = g.op('Transpose', [a.past.key.name], { perm: [0, 1, 3, 2] }); // [B,Hkv,D,P] -> [B,Hkv,P,D]
  const [attn] = g.node(
    'GroupQueryAttention',
    [qRot, newKey, v.name, pastKeyBnsh, a.past.value.name, seqlensK, totalLength],
    { num_heads: c.numHeads, kv_num_heads: Hkv, do_rotary: 0, scale: { float: 1 / Math.sqrt(D) } },
    { domain: ms, outputs: 3 },
  );
  return { attn: dg.value(attn!, q.shape), newKey: dg.value(newKey, k.shape) };
}

/** How a layer's attention is built: fused kernels (GroupQueryAttention) or plain ops, and q|k|v as one projection or three. */
export interface AttentionForm {
  fusedKernels: boolean;
  fusedProjections: boolean;
}

export function makeAttention(ctx: DecoderContext, layer: number, a: AttentionInputs, form: AttentionForm): AttentionOutputs {
  const { dg, c } = ctx;
  return dg.g.scope('attn', () => {
    const projections = qkvProjections(ctx, a.h, layer, form.fusedProjections);
    const { attn, newKey } = form.fusedKernels ? fusedAttention(ctx, projections, a) : plainAttention(ctx, projections, a);
    const p = `model.layers.${layer}.self_attn.o_proj`;
    const out = dg.g.scope('o_proj', () => makeLinear(ctx, attn, { graphName: p, hfNames: [`${p}.weight`], inDim: c.numHeads * c.headDim, outDims: [c.hiddenSize] }));
    return { out, newKey, newValue: projections.v };
  });
}
