// An independent forward pass in plain loops and float64, following the Hugging Face modelling code
// (rotate_half RoPE, RMSNorm in full precision, SiLU-gated MLP, GQA by head groups). It shares no
// code with the ONNX builder: it is what Kiln's graphs are checked against.
import type { TinyWeights } from './tiny-model';

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]!);
}

/** y = W x (+ b), W stored [out, in] as in PyTorch. */
function linear(x: Float64Array, w: Float32Array, out: number, bias?: Float32Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o]! : 0;
    for (let i = 0; i < n; i++) s += w[o * n + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rope(vec: Float64Array, heads: number, dim: number, pos: number, theta: number, factor: number): void {
  const half = dim / 2;
  for (let h = 0; h < heads; h++) {
    const base = h * dim;
    for (let i = 0; i < half; i++) {
      const angle = (pos / factor) * theta ** (-(2 * i) / dim);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const a = vec[base + i]!;
      const b = vec[base + i + half]!;
      vec[base + i] = a * c - b * s;
      vec[base + i + half] = b * c + a * s;
    }
  }
}

/** Logits [T][V] for every position of `tokens`. */
export function referenceForward(model: TinyWeights, tokens: number[]): Float64Array[] {
  const c = model.config;
  const W = (name: string) => {
    const t = model.tensors.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t;
  };
  const d = c.hiddenSize;
  const H = c.numHeads;
  const Hkv = c.numKvHeads;
  const D = c.headDim;
  const group = H / Hkv;
  const embed = W('model.embed_tokens.weight');
  const xs = tokens.map((t) => Float64Array.from(embed.subarray(t * d, (t + 1) * d)));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const bias = (n: string) => (c.attentionBias ? W(`${p}.self_attn.${n}_proj.bias`) : undefined);
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    xs.forEach((x, pos) => {
      const h = rmsNorm(x, W(`${p}.input_layernorm.weight`), c.rmsNormEps);
      const q = linear(h, W(`${p}.self_attn.q_proj.weight`), H * D, bias('q'));
      const k = linear(h, W(`${p}.self_attn.k_proj.weight`), Hkv * D, bias('k'));
      rope(q, H, D, pos, c.ropeTheta, c.ropeLinearFactor);
      rope(k, Hkv, D, pos, c.ropeTheta, c.ropeLinearFactor);
      qs.push(q);
      ks.push(k);
      vs.push(linear(h, W(`${p}.self_attn.v_proj.weight`), Hkv * D, bias('v')));
    });
    for (let t = 0; t < xs.length; t++) {
      const attn = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const scores = new Float64Array(t + 1);
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < D; i++) dot += qs[t]![h * D + i]! * ks[s]![kvh * D + i]!;
          scores[s] = dot / Math.sqrt(D);
          max = Math.max(max, scores[s]!);
        }
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += scores[s] = Math.exp(scores[s]! - max);
        for (let s = 0; s <= t; s++) {
          for (let i = 0; i < D; i++) attn[h * D + i] += (scores[s]! / sum) * vs[s]![kvh * D + i]!;
        }
      }
      const o = linear(attn, W(`${p}.self_attn.o_proj.weight`), d);
      const x = xs[t]!;
      for (let i = 0; i < d; i++) x[i] += o[i]!;
      const h2 = rmsNorm(x, W(`${p}.post_attention_layernorm.weight`), c.rmsNormEps);
      const gate = linear(h2, W(`${p}.mlp.gate_proj.weight`), c.intermediateSize);
      const up = linear(h2, W(`${p}.mlp.up_proj.weight`), c.intermediateSize);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(act, W(`${p}.mlp.down_proj.weight`), d);
      for (let i = 0; i < d; i++) x[i] += down[i]!;
    }
  }
  const head = c.tieWordEmbeddings ? embed : W('lm_head.weight');
  return xs.map((x) => linear(rmsNorm(x, W('model.norm.weight'), c.rmsNormEps), head, c.vocabSize));
}

/** Natural-log softmax of one row of logits. */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}
