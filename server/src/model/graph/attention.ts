// Self-attention with a KV cache, in two forms that share inputs and outputs:
//  - plain ops (portable on every execution provider; the base the training graph differentiates),
//  - com.microsoft RotaryEmbedding + GroupQueryAttention (ORT's fused CPU kernels).
// The cache crosses the graph boundary position-major, [B, P, Hkv*D], so the caller can hand ORT a
// zero-copy view of the first P rows of a growing buffer, and only the S new rows are fetched back.
import { type DecoderContext, makeLinear } from './decoder-parts';

export interface AttentionInputs {
  h: string; // normed hidden [B,S,d]
  pastKey: string; // [B,P,Hkv*D]
  pastValue: string; // [B,P,Hkv*D]
  /** Plain path: RoPE tables [S, D] and the causal bias [S, P+S], shared by all layers. */
  rope?: { cos: string; sin: string };
  causalBias?: string;
  /** Fused path: RoPE caches [maxPos, D/2], position ids int64 [B,S], seqlens_k int32 [B] = P+S-1, total int32 scalar. */
  fused?: { cosCache: string; sinCache: string; positionIds: string; seqlensK: string; totalLength: string };
}

export interface AttentionOutputs {
  out: string; // [B,S,d] after o_proj
  newKey: string; // [B,S,Hkv*D] rotated keys of the new positions
  newValue: string; // [B,S,Hkv*D]
}

function qkvProjections(ctx: DecoderContext, h: string, layer: number, fused: boolean): { q: string; k: string; v: string } {
  const { g, c } = ctx;
  const p = `model.layers.${layer}.self_attn`;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const bias = (n: string) => (c.attentionBias ? [`${p}.${n}_proj.bias`] : undefined);
  if (!fused) {
    const q = g.scope('q_proj', () => makeLinear(ctx, h, `${p}.q_proj`, [`${p}.q_proj.weight`], c.hiddenSize, [qd], bias('q')));
    const k = g.scope('k_proj', () => makeLinear(ctx, h, `${p}.k_proj`, [`${p}.k_proj.weight`], c.hiddenSize, [kvd], bias('k')));
    const v = g.scope('v_proj', () => makeLinear(ctx, h, `${p}.v_proj`, [`${p}.v_proj.weight`], c.hiddenSize, [kvd], bias('v')));
    return { q, k, v };
  }
  const biases = c.attentionBias ? ['q', 'k', 'v'].map((n) => `${p}.${n}_proj.bias`) : undefined;
  const qkv = g.scope('qkv_proj', () =>
    makeLinear(ctx, h, `${p}.qkv_proj`, ['q', 'k', 'v'].map((n) => `${p}.${n}_proj.weight`), c.hiddenSize, [qd, kvd, kvd], biases),
  ); // [B,S,(H+2Hkv)D]
  const [q, k, v] = g.node('Split', [qkv, g.int64([qd, kvd, kvd])], { axis: -1 }, { outputs: 3 });
  return { q: q!, k: k!, v: v! };
}

/** x [B,S,N*D] -> rotate_half RoPE -> [B,S,N,D], with cos/sin [S,D]. */
function applyRope(ctx: DecoderContext, x: string, heads: number, rope: { cos: string; sin: string }): string {
  const { g, c } = ctx;
  const D = c.headDim;
  const x4 = g.op('Reshape', [x, g.int64([0, 0, heads, D])]); // [B,S,N,D]
  const cos = g.op('Unsqueeze', [rope.cos, g.int64([1])]); // [S,1,D]
  const sin = g.op('Unsqueeze', [rope.sin, g.int64([1])]);
  const [x1, x2] = g.node('Split', [x4, g.int64([D / 2, D / 2])], { axis: -1 }, { outputs: 2 });
  const rotated = g.op('Concat', [g.op('Neg', [x2!]), x1!], { axis: -1 }); // rotate_half
  return g.op('Add', [g.op('Mul', [x4, cos]), g.op('Mul', [rotated, sin])]);
}

/**
 *  q ─RoPE─ [B,Hkv,G,S,D] ─┐
 *  past_k ⊕ k ─RoPE──────── MatMul ─ + causal bias ─ Softmax ─ MatMul(past_v ⊕ v) ─ [B,S,H*D]
 */
function plainAttention(ctx: DecoderContext, q: string, k: string, v: string, a: AttentionInputs): { attn: string; newKey: string } {
  const { g, c } = ctx;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const G = H / Hkv;
  const D = c.headDim;
  if (!a.rope || !a.causalBias) throw new Error('plain attention needs RoPE tables and a causal bias');
  const qRot = g.op('Mul', [applyRope(ctx, q, H, a.rope), g.float32([1 / Math.sqrt(D)], [])]); // [B,S,H,D], pre-scaled
  const kRot = applyRope(ctx, k, Hkv, a.rope); // [B,S,Hkv,D]
  const newKey = g.op('Reshape', [kRot, g.int64([0, 0, Hkv * D])]); // [B,S,Hkv*D]
  const kAll = g.op('Concat', [a.pastKey, newKey], { axis: 1 }); // [B,T,Hkv*D]
  const vAll = g.op('Concat', [a.pastValue, v], { axis: 1 });
  const q5 = g.op('Transpose', [g.op('Reshape', [qRot, g.int64([0, 0, Hkv, G, D])])], { perm: [0, 2, 3, 1, 4] }); // [B,Hkv,G,S,D]
  const kT = g.op('Transpose', [g.op('Reshape', [kAll, g.int64([0, 0, Hkv, D])])], { perm: [0, 2, 3, 1] }); // [B,Hkv,D,T]
  const v4 = g.op('Transpose', [g.op('Reshape', [vAll, g.int64([0, 0, Hkv, D])])], { perm: [0, 2, 1, 3] }); // [B,Hkv,T,D]
  const one = g.int64([2]);
  const scores = g.op('MatMul', [q5, g.op('Unsqueeze', [kT, one])]); // [B,Hkv,G,S,T]
  const probs = g.op('Softmax', [g.op('Add', [scores, a.causalBias])], { axis: -1 });
  const ctx5 = g.op('MatMul', [probs, g.op('Unsqueeze', [v4, one])]); // [B,Hkv,G,S,D]
  const attn = g.op('Reshape', [g.op('Transpose', [ctx5], { perm: [0, 3, 1, 2, 4] }), g.int64([0, 0, H * D])]); // [B,S,H*D]
  return { attn, newKey };
}

/** RotaryEmbedding + GroupQueryAttention; past goes in BNSH [B,Hkv,P,D] as the kernel expects. */
function fusedAttention(ctx: DecoderContext, q: string, k: string, v: string, a: AttentionInputs): { attn: string; newKey: string } {
  const { g, c } = ctx;
  const Hkv = c.numKvHeads;
  const D = c.headDim;
  const ms = 'com.microsoft';
  if (!a.fused) throw new Error('fused attention needs RoPE caches and sequence lengths');
  const { cosCache, sinCache, positionIds, seqlensK, totalLength } = a.fused;
  const qRot = g.op('RotaryEmbedding', [q, positionIds, cosCache, sinCache], { interleaved: 0 }, ms); // [B,S,H*D]
  const newKey = g.op('RotaryEmbedding', [k, positionIds, cosCache, sinCache], { interleaved: 0 }, ms); // [B,S,Hkv*D]
  const toBnsh = (x: string) => g.op('Transpose', [g.op('Reshape', [x, g.int64([0, 0, Hkv, D])])], { perm: [0, 2, 1, 3] }); // [B,Hkv,P,D]
  const [attn] = g.node(
    'GroupQueryAttention',
    [qRot, newKey, v, toBnsh(a.pastKey), toBnsh(a.pastValue), seqlensK, totalLength],
    { num_heads: c.numHeads, kv_num_heads: Hkv, do_rotary: 0, scale: { float: 1 / Math.sqrt(D) } },
    { domain: ms, outputs: 3 },
  );
  return { attn: attn!, newKey };
}

export function makeAttention(ctx: DecoderContext, layer: number, a: AttentionInputs, fused: boolean): AttentionOutputs {
  const { g, c } = ctx;
  return g.scope('attn', () => {
    const { q, k, v } = qkvProjections(ctx, a.h, layer, fused);
    const { attn, newKey } = fused ? fusedAttention(ctx, q, k, v, a) : plainAttention(ctx, q, k, v, a);
    const p = `model.layers.${layer}.self_attn.o_proj`;
    const out = g.scope('o_proj', () => makeLinear(ctx, attn, p, [`${p}.weight`], c.numHeads * c.headDim, [c.hiddenSize]));
    return { out, newKey, newValue: v };
  });
}
