// The decoder graph: one model definition for inference (with a KV cache) and training.
//
//  input_ids [B,S] ─ Gather(embed) ─┬─ layer 0 … layer N-1 ─ Gather(logits_index) ─ norm ─ lm_head ─ logits [B,K,V]
//  past.{l}.key [B,Hkv,D,P] ────────┤        └─ new.{l}.key/value [B,S,Hkv*D] (only the new positions)
//  past.{l}.value [B,Hkv,P,D] ──────┤
//  past_lengths [B] ────────────────┘ row b's valid past is its first past_lengths[b] of the P positions
//                                     (right padding), so slots of different lengths decode as one batch;
//                                     the past is in the layouts attention reads, so no step transposes it
import type { ModelConfig } from '../config';
import type { QuantBits } from '../quantize';
import { makeAttention, type RotaryTables } from './attention';
import {
  type DecoderContext,
  embeddingType,
  INITIALIZER_PARAMS,
  makeMlp,
  makeRmsNorm,
  makeSkipRmsNorm,
  type ParamSource,
  ropeCaches,
  ropeInverseFrequencies,
  readWeightHalfBits,
  readWeightInto,
  stackedRowReader,
  type WeightSource,
} from './decoder-parts';
import { DiffGraph, type Value } from './diff-graph';
import { GraphBuilder } from './onnx-graph';
import type { ParallelQuantizer } from './parallel-quantize';
import { add, cast } from './ops-elementwise';
import { embedding } from './ops-nn';
import { quantizedMatMul } from './quantized-matmul';

/** Bump when the graph a config produces changes: it keys the on-disk cache of built models. */
export const DECODER_BUILDER_VERSION = 7; // 7: inference graphs fuse q|k|v; 6: residual adds into norms, RoPE by RotaryEmbedding, int8 by QuantizeLinear/DequantizeLinear
export const DECODER_OPSETS = { '': 23, 'com.microsoft': 1 };

export type AttentionPath = 'plain' | 'fused';
export type WeightType = 'float32' | 'float16';

export interface DecoderGraphOptions {
  attention: AttentionPath;
  weightType: WeightType;
  /**
   * Also output the whole cache, present.{l}.key = past ⊕ new in the past's layout, the conventional
   * interface. Kiln's runtime does not use it (fetching it copies the whole cache every step);
   * the benchmark builds it to measure exactly that cost.
   */
  emitPresent?: boolean;
  /** Linear layers and the LM head quantized (int4 MatMulNBits block 32, int8 MatMulInteger per channel; quantized-matmul.ts); the embedding then float16. */
  quantization?: QuantBits;
  /** int8 weights coded on two threads; `weights` must be the checkpoint the quantizer reopens. Not part of the graph: same bytes. */
  parallelQuantizer?: ParallelQuantizer;
}

/** Names of the graph's inputs and outputs, shared with the runtime. */
export const DecoderIO = {
  inputIds: 'input_ids', // int64 [B,S]
  logitsIndex: 'logits_index', // int64 [K]: positions in S whose logits are wanted (-1 = last)
  pastLengths: 'past_lengths', // int64 [B]: valid rows of each batch row's past (≤ P; the rest is padding)
  logits: 'logits', // float32 [B,K,V]
  pastKey: (l: number) => `past.${l}.key`, // float32 [B,Hkv,D,P]
  pastValue: (l: number) => `past.${l}.value`, // float32 [B,Hkv,P,D]
  newKey: (l: number) => `new.${l}.key`, // float32 [B,S,Hkv*D]
  newValue: (l: number) => `new.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`, // float32 [B,Hkv,D,P+S], only with emitPresent
  presentValue: (l: number) => `present.${l}.value`, // float32 [B,Hkv,P+S,D]
};

const TO_FLOAT32 = 1;
const TO_INT32 = 6;

export interface DecoderBody {
  hidden: Value; // [B,S,d] before the final norm
  newKv: { key: Value; value: Value }[];
  embedTable: Value; // [V,d], shared with a tied head
}

/**
 * Embedding and every layer. `past` absent means P = 0 (training, or a graph without cache).
 * `pastLengths` (int64 [B]) makes positions, RoPE and the mask per row: row b continues at position
 * pastLengths[b] and attends to its first pastLengths[b] past rows only.
 */
export function makeDecoderBody(ctx: DecoderContext, inputIds: Value, past: { key: Value; value: Value }[] | undefined, fused: boolean, pastLengths?: string): DecoderBody {
  const { dg, c } = ctx;
  const { g } = dg;
  return g.scope('model', () => {
    const shape = g.op('Shape', [inputIds.name]);
    const batchVec = g.op('Slice', [shape, g.int64([0]), g.int64([1])]); // [1] = B
    const seqLength = g.op('Squeeze', [g.op('Slice', [shape, g.int64([1]), g.int64([2])])]); // S
    const pastLength = past ? g.op('Squeeze', [g.op('Slice', [g.op('Shape', [past[0]!.value.name]), g.int64([2]), g.int64([3])])]) : g.int64([0], []); // P
    const positions = g.op('Range', [pastLength, g.op('Add', [pastLength, seqLength]), g.int64([1], [])]); // int64 [S]
    const perRow = pastLengths ? { pastLengths, positions: makeRowPositions(ctx, pastLengths, seqLength) } : undefined;
    const shared = fused
      ? { fused: makeFusedInputs(ctx, batchVec, pastLength, positions, perRow) }
      : perRow
        ? makeRowPlainInputs(ctx, pastLength, seqLength, perRow)
        : makePlainInputs(ctx, pastLength, positions);

    const embedType = embeddingType(ctx);
    const embedTable = ctx.params.weight(ctx, {
      graphName: 'model.embed_tokens.weight',
      elem: embedType,
      shape: [c.vocabSize, c.hiddenSize],
      values: () => ctx.weights.readFloat32('model.embed_tokens.weight'),
      halfBits: () => readWeightHalfBits(ctx.weights, 'model.embed_tokens.weight'),
    });
    const x = g.scope('embed_tokens', () => {
      const rows = embedding(dg, embedTable, inputIds); // [B,S,d]
      return embedType === 'float16' ? cast(dg, rows, 'float32') : rows;
    });
    const inference = past !== undefined;
    /** residual + delta (none before the first layer) and its RMSNorm; one fused kernel in an inference graph. */
    const addAndNorm = (delta: Value | undefined, residual: Value, hfName: string): { normed: Value; sum: Value } => {
      if (delta && inference) return makeSkipRmsNorm(ctx, delta, residual, hfName);
      const sum = delta ? add(dg, residual, delta) : residual;
      return { normed: makeRmsNorm(ctx, sum, hfName, fused || inference), sum };
    };
    const newKv: DecoderBody['newKv'] = [];
    let residual = x;
    let pending: Value | undefined; // the last sublayer's output, not yet added to `residual`
    for (let l = 0; l < c.numLayers; l++) {
      const layer = () => {
        const p = `model.layers.${l}`;
        const input = g.scope('input_layernorm', () => addAndNorm(pending, residual, `${p}.input_layernorm.weight`));
        // inference: q|k|v as one product, its input quantized once (gate|up stay apart: at prefill one
        // product and its Split measured slower than two on an AVX2 EPYC); training keeps each projection for LoRA
        const attn = makeAttention(ctx, l, { h: input.normed, past: past?.[l], ...shared }, { fusedKernels: fused, fusedProjections: fused || inference });
        newKv.push({ key: attn.newKey, value: attn.newValue });
        const post = g.scope('post_attention_layernorm', () => addAndNorm(attn.out, input.sum, `${p}.post_attention_layernorm.weight`));
        residual = post.sum;
        pending = makeMlp(ctx, post.normed, l, fused);
      };
      // recomputed, a layer keeps only what flows into it: its residual stream
      g.scope(`layers.${l}`, () => (ctx.recomputeLayers ? dg.recomputed([pending, residual], layer) : layer()));
    }
    return { hidden: pending ? add(dg, residual, pending) : residual, newKv, embedTable };
  });
}

/** The inference graph with KV-cache inputs and outputs. */
export function buildDecoderGraph(c: ModelConfig, weights: WeightSource, options: DecoderGraphOptions, params: ParamSource = INITIALIZER_PARAMS): GraphBuilder {
  const g = new GraphBuilder('kiln_decoder');
  const dg = new DiffGraph(g, false);
  const ctx: DecoderContext = {
    dg,
    c,
    weights,
    params,
    weightType: options.weightType,
    quantization: options.quantization,
    ...(options.parallelQuantizer ? { parallelQuantizer: options.parallelQuantizer } : {}),
  };
  const fused = options.attention === 'fused';
  const kvDim = c.numKvHeads * c.headDim;
  const keyShape = ['batch', c.numKvHeads, c.headDim, 'past_sequence'];
  const valueShape = ['batch', c.numKvHeads, 'past_sequence', c.headDim];

  const inputIds = dg.value(g.input(DecoderIO.inputIds, 'int64', ['batch', 'sequence']), ['batch', 'sequence'], 'int64');
  const logitsIndex = g.input(DecoderIO.logitsIndex, 'int64', ['logit_positions']);
  const pastLengths = g.input(DecoderIO.pastLengths, 'int64', ['batch']);
  const past = Array.from({ length: c.numLayers }, (_, l) => ({
    key: dg.value(g.input(DecoderIO.pastKey(l), 'float32', keyShape), keyShape),
    value: dg.value(g.input(DecoderIO.pastValue(l), 'float32', valueShape), valueShape),
  }));
  const body = makeDecoderBody(ctx, inputIds, past, fused, pastLengths);
  body.newKv.forEach((kv, l) => {
    g.output(kv.key.name, DecoderIO.newKey(l), 'float32', ['batch', 'sequence', kvDim]);
    g.output(kv.value.name, DecoderIO.newValue(l), 'float32', ['batch', 'sequence', kvDim]);
    if (options.emitPresent) {
      const heads = (x: string, perm: number[]) => g.op('Transpose', [g.op('Reshape', [x, g.int64([0, 0, c.numKvHeads, c.headDim])])], { perm }); // [B,S,Hkv*D] -> the past's layout
      g.output(g.op('Concat', [past[l]!.key.name, heads(kv.key.name, [0, 2, 3, 1])], { axis: 3 }), DecoderIO.presentKey(l), 'float32', [
        'batch',
        c.numKvHeads,
        c.headDim,
        'total_sequence',
      ]);
      g.output(g.op('Concat', [past[l]!.value.name, heads(kv.value.name, [0, 2, 1, 3])], { axis: 2 }), DecoderIO.presentValue(l), 'float32', [
        'batch',
        c.numKvHeads,
        'total_sequence',
        c.headDim,
      ]);
    }
  });
  const logits = g.scope('lm_head', () => makeInferenceLogits(ctx, body, logitsIndex, fused));
  g.output(logits, DecoderIO.logits, 'float32', ['batch', 'logit_positions', c.vocabSize]);
  return g;
}

/** RoPE tables [S,D] and the causal bias [S,T] computed once from the positions, for plain attention. */
function makePlainInputs(ctx: DecoderContext, pastLength: string, positions: string): { rope: { cos: Value; sin: Value }; causalBias: Value } {
  const { dg, c } = ctx;
  const { g } = dg;
  return g.scope('rotary', () => {
    const pos = g.op('Div', [g.op('Cast', [positions], { to: TO_FLOAT32 }), g.float32([c.ropeLinearFactor], [])]); // [S]
    const freqs = g.op('Mul', [g.op('Unsqueeze', [pos, g.int64([1])]), g.float32(ropeInverseFrequencies(c))]); // [S,D/2]
    const angles = g.op('Concat', [freqs, freqs], { axis: -1 }); // [S,D]
    const keyPositions = g.op('Range', [g.int64([0], []), g.op('Add', [pastLength, g.op('Squeeze', [g.op('Shape', [positions])])]), g.int64([1], [])]); // [T]
    const future = g.op('Greater', [g.op('Unsqueeze', [keyPositions, g.int64([0])]), g.op('Unsqueeze', [positions, g.int64([1])])]); // [S,T]
    const causalBias = g.op('Where', [future, g.float32([-Infinity], []), g.float32([0], [])]); // [S,T]
    return {
      rope: { cos: dg.value(g.op('Cos', [angles]), ['sequence', c.headDim]), sin: dg.value(g.op('Sin', [angles]), ['sequence', c.headDim]) },
      causalBias: dg.value(causalBias, ['sequence', 'total_sequence']),
    };
  });
}

interface RowPositions {
  pastLengths: string; // int64 [B]
  positions: string; // int64 [B,S] = pastLengths[b] + s
}

/** Each row's positions, pastLengths[b] + s: int64 [B,S]. */
function makeRowPositions(ctx: DecoderContext, pastLengths: string, seqLength: string): string {
  const { g } = ctx.dg;
  const steps = g.op('Range', [g.int64([0], []), seqLength, g.int64([1], [])]); // [S]
  return g.op('Add', [g.op('Unsqueeze', [pastLengths, g.int64([1])]), g.op('Unsqueeze', [steps, g.int64([0])])]); // [B,S]
}

/**
 * Per-row RoPE tables [B,S,D] and the mask bias [B,1,1,S,T] (T = P+S) for plain attention.
 *
 *  key j < P (past):      visible iff j < pastLengths[b]        (right padding is masked)
 *  key j = P+i' (new):    visible iff i' <= i                   (causal among the new tokens)
 */
function makeRowPlainInputs(ctx: DecoderContext, pastLength: string, seqLength: string, rows: RowPositions): { rotary: RotaryTables; causalBias: Value } {
  const { dg } = ctx;
  const { g } = dg;
  return g.scope('rotary', () => {
    const keys = g.op('Range', [g.int64([0], []), g.op('Add', [pastLength, seqLength]), g.int64([1], [])]); // [T]
    const queries = g.op('Range', [g.int64([0], []), seqLength, g.int64([1], [])]); // [S]
    const pastVisible = g.op('Less', [g.op('Unsqueeze', [keys, g.int64([0])]), g.op('Unsqueeze', [rows.pastLengths, g.int64([1])])]); // [B,T]
    const newIndex = g.op('Unsqueeze', [g.op('Sub', [keys, pastLength]), g.int64([0])]); // [1,T] = j - P
    const isNew = g.op('GreaterOrEqual', [newIndex, g.int64([0], [])]); // [1,T]
    const causal = g.op('LessOrEqual', [newIndex, g.op('Unsqueeze', [queries, g.int64([1])])]); // [S,T]
    const newVisible = g.op('And', [isNew, causal]); // [S,T]
    const visible = g.op('Or', [g.op('Unsqueeze', [pastVisible, g.int64([1])]), g.op('Unsqueeze', [newVisible, g.int64([0])])]); // [B,S,T]
    const bias = g.op('Where', [visible, g.float32([0], []), g.float32([-Infinity], [])]); // [B,S,T]
    return {
      rotary: makeStepRotaryTables(ctx, rows.positions),
      causalBias: dg.value(g.op('Unsqueeze', [bias, g.int64([1, 2])]), ['batch', 1, 1, 'sequence', 'total_sequence']), // [B,1,1,S,T]
    };
  });
}

/**
 * com.microsoft RotaryEmbedding tables for just this step's B·S positions: row i of the caches is the
 * angle of flattened position i, and position id [b,s] points at row b·S+s. One kernel per q and k
 * replaces ~9 plain nodes each, without a [maxPositions, D/2] table in the graph. The query tables
 * carry attention's 1/√D (RoPE is linear in its input), which saves a Mul per layer.
 */
function makeStepRotaryTables(ctx: DecoderContext, positions: string): RotaryTables {
  const { c } = ctx;
  const { g } = ctx.dg;
  const flat = g.op('Reshape', [positions, g.int64([-1])]); // int64 [B·S]
  const pos = g.op('Div', [g.op('Cast', [flat], { to: TO_FLOAT32 }), g.float32([c.ropeLinearFactor], [])]); // [B·S]
  const angles = g.op('Mul', [g.op('Unsqueeze', [pos, g.int64([1])]), g.float32(ropeInverseFrequencies(c))]); // [B·S, D/2]
  const cos = g.op('Cos', [angles]);
  const sin = g.op('Sin', [angles]);
  const queryScale = g.float32([1 / Math.sqrt(c.headDim)], []);
  const ids = g.op('Range', [g.int64([0], []), g.op('Size', [flat]), g.int64([1], [])]); // [B·S]
  return {
    positionIds: g.op('Reshape', [ids, g.op('Shape', [positions])]), // int64 [B,S]
    cos,
    sin,
    cosQuery: g.op('Mul', [cos, queryScale]),
    sinQuery: g.op('Mul', [sin, queryScale]),
  };
}

/**
 * Inputs of RotaryEmbedding/GroupQueryAttention shared by all layers. With per-row lengths the
 * position ids start at pastLengths[b] and seqlens_k = pastLengths[b] + S - 1: the kernel reads
 * only that many past rows of each batch row and writes the new ones after them.
 */
function makeFusedInputs(ctx: DecoderContext, batchVec: string, pastLength: string, positions: string, rows?: RowPositions) {
  const { dg, c } = ctx;
  const { g } = dg;
  return g.scope('rotary', () => {
    let tables: ReturnType<typeof ropeCaches> | undefined;
    const cached = () => (tables ??= ropeCaches(c));
    const cosCache = g.weight('rope.cos_cache', 'float32', [c.maxPositions, c.headDim / 2], () => cached().cos);
    const sinCache = g.weight('rope.sin_cache', 'float32', [c.maxPositions, c.headDim / 2], () => cached().sin);
    const bs = g.op('Concat', [batchVec, g.op('Shape', [positions])], { axis: 0 }); // [2] = (B,S)
    const positionIds = rows ? rows.positions : g.op('Expand', [g.op('Unsqueeze', [positions, g.int64([0])]), bs]); // int64 [B,S]
    const seqLength = g.op('Squeeze', [g.op('Shape', [positions])]); // S
    const total = g.op('Add', [pastLength, seqLength]); // P+S
    const totalLength = g.op('Cast', [total], { to: TO_INT32 }); // int32 scalar
    const rowTotals = rows ? g.op('Add', [rows.pastLengths, seqLength]) : g.op('Expand', [total, batchVec]); // int64 [B]
    const seqlensK = g.op('Cast', [g.op('Sub', [rowTotals, g.int64([1], [])])], { to: TO_INT32 }); // int32 [B]
    return { cosCache, sinCache, positionIds, seqlensK, totalLength };
  });
}

/** hidden [B,S,d] -> Gather(logits_index) [B,K,d] -> final norm -> Gemm(transB) -> [B,K,V]. */
function makeInferenceLogits(ctx: DecoderContext, body: DecoderBody, logitsIndex: string, fused: boolean): string {
  const { dg, c } = ctx;
  const { g } = dg;
  const selected = dg.value(g.op('Gather', [body.hidden.name, logitsIndex], { axis: 1 }), ['batch', 'logit_positions', c.hiddenSize]); // [B,K,d]
  const normed = makeRmsNorm(ctx, selected, 'model.norm.weight', fused);
  const headName = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  if (ctx.quantization)
    return quantizedMatMul(dg, normed, {
      graphName: 'lm_head',
      bits: ctx.quantization,
      n: c.vocabSize,
      k: c.hiddenSize,
      rows: (into) => readWeightInto(ctx.weights, headName, into),
      readRows: stackedRowReader(ctx.weights, [headName], [c.vocabSize], c.hiddenSize),
      ...(ctx.parallelQuantizer ? { parallel: { quantizer: ctx.parallelQuantizer, stacked: { names: [headName], rows: [c.vocabSize] } } } : {}),
    }).name; // [B,K,V]
  // Gemm with transB reads the HF [V,d] layout directly, so a tied head shares the embedding table.
  const head = c.tieWordEmbeddings
    ? body.embedTable.name
    : ctx.params.weight(ctx, { graphName: headName, elem: ctx.weightType, shape: [c.vocabSize, c.hiddenSize], values: () => ctx.weights.readFloat32(headName) }).name;
  let flat = g.op('Reshape', [normed.name, g.int64([-1, c.hiddenSize])]); // [B*K,d]
  if (ctx.weightType === 'float16') flat = g.op('Cast', [flat], { to: 10 });
  let logits = g.op('Gemm', [flat, head], { transB: 1 }); // [B*K,V]
  if (ctx.weightType === 'float16') logits = g.op('Cast', [logits], { to: TO_FLOAT32 });
  const batchVec = g.op('Slice', [g.op('Shape', [normed.name]), g.int64([0]), g.int64([1])]);
  return g.op('Reshape', [logits, g.op('Concat', [batchVec, g.int64([-1, c.vocabSize])], { axis: 0 })]); // [B,K,V]
}
