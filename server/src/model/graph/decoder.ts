// The decoder graph: one model definition for inference (with a KV cache) and, later, training.
//
//  input_ids [B,S] ─ Gather(embed) ─┬─ layer 0 … layer N-1 ─ Gather(logits_index) ─ norm ─ lm_head ─ logits [B,K,V]
//  past.{l}.key/value [B,P,Hkv*D] ──┘        └─ new.{l}.key/value [B,S,Hkv*D] (only the new positions)
import type { ModelConfig } from '../config';
import { makeAttention } from './attention';
import { type DecoderContext, makeMlp, makeRmsNorm, matrixWeight, ropeCaches, ropeInverseFrequencies, type WeightSource } from './decoder-parts';
import { GraphBuilder } from './onnx-graph';

/** Bump when the graph a config produces changes: it keys the on-disk cache of built models. */
export const DECODER_BUILDER_VERSION = 1;
export const DECODER_OPSETS = { '': 23, 'com.microsoft': 1 };

export type AttentionPath = 'plain' | 'fused';
export type WeightType = 'float32' | 'float16';

export interface DecoderGraphOptions {
  attention: AttentionPath;
  weightType: WeightType;
  /**
   * Also output the whole cache, present.{l}.key = past ⊕ new [B,P+S,Hkv*D], the conventional
   * interface. Kiln's runtime does not use it (fetching it copies the whole cache every step);
   * the benchmark builds it to measure exactly that cost.
   */
  emitPresent?: boolean;
}

/** Names of the graph's inputs and outputs, shared with the runtime. */
export const DecoderIO = {
  inputIds: 'input_ids', // int64 [B,S]
  logitsIndex: 'logits_index', // int64 [K]: positions in S whose logits are wanted (-1 = last)
  logits: 'logits', // float32 [B,K,V]
  pastKey: (l: number) => `past.${l}.key`, // float32 [B,P,Hkv*D]
  pastValue: (l: number) => `past.${l}.value`,
  newKey: (l: number) => `new.${l}.key`, // float32 [B,S,Hkv*D]
  newValue: (l: number) => `new.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`, // float32 [B,P+S,Hkv*D], only with emitPresent
  presentValue: (l: number) => `present.${l}.value`,
};

const TO_FLOAT32 = 1;
const TO_FLOAT16 = 10;
const TO_INT32 = 6;

export function buildDecoderGraph(c: ModelConfig, weights: WeightSource, options: DecoderGraphOptions): GraphBuilder {
  const g = new GraphBuilder('kiln_decoder');
  const ctx: DecoderContext = { g, c, weights, weightType: options.weightType };
  const fused = options.attention === 'fused';
  const kvDim = c.numKvHeads * c.headDim;

  const inputIds = g.input(DecoderIO.inputIds, 'int64', ['batch', 'sequence']);
  const logitsIndex = g.input(DecoderIO.logitsIndex, 'int64', ['logit_positions']);
  const past = Array.from({ length: c.numLayers }, (_, l) => ({
    key: g.input(DecoderIO.pastKey(l), 'float32', ['batch', 'past_sequence', kvDim]),
    value: g.input(DecoderIO.pastValue(l), 'float32', ['batch', 'past_sequence', kvDim]),
  }));

  const { batchVec, pastLength, positions } = g.scope('model', () => {
    const shape = g.op('Shape', [inputIds]);
    const batchVec = g.op('Slice', [shape, g.int64([0]), g.int64([1])]); // [1] = B
    const seqLength = g.op('Squeeze', [g.op('Slice', [shape, g.int64([1]), g.int64([2])])]); // S
    const pastLength = g.op('Squeeze', [g.op('Slice', [g.op('Shape', [past[0]!.key]), g.int64([1]), g.int64([2])])]); // P
    const positions = g.op('Range', [pastLength, g.op('Add', [pastLength, seqLength]), g.int64([1], [])]); // int64 [S]
    return { batchVec, pastLength, positions };
  });

  const attnShared = g.scope('model', () => (fused ? { fused: makeFusedInputs(ctx, batchVec, pastLength, positions) } : makePlainInputs(ctx, pastLength, positions)));

  let x = g.scope('model', () =>
    g.scope('embed_tokens', () => {
      const table = matrixWeight(ctx, 'model.embed_tokens.weight', [c.vocabSize, c.hiddenSize], () => weights.readFloat32('model.embed_tokens.weight'));
      const rows = g.op('Gather', [table, inputIds], { axis: 0 }); // [B,S,d]
      return options.weightType === 'float16' ? g.op('Cast', [rows], { to: TO_FLOAT32 }) : rows;
    }),
  );

  for (let l = 0; l < c.numLayers; l++) {
    x = g.scope('model', () =>
      g.scope(`layers.${l}`, () => {
        const p = `model.layers.${l}`;
        const h = g.scope('input_layernorm', () => makeRmsNorm(ctx, x, `${p}.input_layernorm.weight`, `${p}.input_layernorm.weight`, fused));
        const attn = makeAttention(ctx, l, { h, pastKey: past[l]!.key, pastValue: past[l]!.value, ...attnShared }, fused);
        g.output(attn.newKey, DecoderIO.newKey(l), 'float32', ['batch', 'sequence', kvDim]);
        g.output(attn.newValue, DecoderIO.newValue(l), 'float32', ['batch', 'sequence', kvDim]);
        if (options.emitPresent) {
          g.output(g.op('Concat', [past[l]!.key, attn.newKey], { axis: 1 }), DecoderIO.presentKey(l), 'float32', ['batch', 'total_sequence', kvDim]);
          g.output(g.op('Concat', [past[l]!.value, attn.newValue], { axis: 1 }), DecoderIO.presentValue(l), 'float32', ['batch', 'total_sequence', kvDim]);
        }
        const afterAttn = g.op('Add', [x, attn.out]);
        const h2 = g.scope('post_attention_layernorm', () =>
          makeRmsNorm(ctx, afterAttn, `${p}.post_attention_layernorm.weight`, `${p}.post_attention_layernorm.weight`, fused),
        );
        return g.op('Add', [afterAttn, makeMlp(ctx, h2, l)]);
      }),
    );
  }

  const logits = g.scope('lm_head', () => makeLogits(ctx, x, logitsIndex, batchVec, fused));
  g.output(logits, DecoderIO.logits, 'float32', ['batch', 'logit_positions', c.vocabSize]);
  return g;
}

/** RoPE tables [S,D] and the causal bias [S,T] computed once from the positions, for plain attention. */
function makePlainInputs(ctx: DecoderContext, pastLength: string, positions: string): { rope: { cos: string; sin: string }; causalBias: string } {
  const { g, c } = ctx;
  return g.scope('rotary', () => {
    const pos = g.op('Div', [g.op('Cast', [positions], { to: TO_FLOAT32 }), g.float32([c.ropeLinearFactor], [])]); // [S]
    const freqs = g.op('Mul', [g.op('Unsqueeze', [pos, g.int64([1])]), g.float32(ropeInverseFrequencies(c))]); // [S,D/2]
    const angles = g.op('Concat', [freqs, freqs], { axis: -1 }); // [S,D]
    const keyPositions = g.op('Range', [g.int64([0], []), g.op('Add', [pastLength, g.op('Squeeze', [g.op('Shape', [positions])])]), g.int64([1], [])]); // [T]
    const future = g.op('Greater', [g.op('Unsqueeze', [keyPositions, g.int64([0])]), g.op('Unsqueeze', [positions, g.int64([1])])]); // [S,T]
    const causalBias = g.op('Where', [future, g.float32([-Infinity], []), g.float32([0], [])]); // [S,T]
    return { rope: { cos: g.op('Cos', [angles]), sin: g.op('Sin', [angles]) }, causalBias };
  });
}

/** Inputs of RotaryEmbedding/GroupQueryAttention shared by all layers. */
function makeFusedInputs(ctx: DecoderContext, batchVec: string, pastLength: string, positions: string) {
  const { g, c } = ctx;
  return g.scope('rotary', () => {
    let tables: ReturnType<typeof ropeCaches> | undefined;
    const cached = () => (tables ??= ropeCaches(c));
    const cosCache = g.weight('rope.cos_cache', 'float32', [c.maxPositions, c.headDim / 2], () => cached().cos);
    const sinCache = g.weight('rope.sin_cache', 'float32', [c.maxPositions, c.headDim / 2], () => cached().sin);
    const bs = g.op('Concat', [batchVec, g.op('Shape', [positions])], { axis: 0 }); // [2] = (B,S)
    const positionIds = g.op('Expand', [g.op('Unsqueeze', [positions, g.int64([0])]), bs]); // int64 [B,S]
    const total = g.op('Add', [pastLength, g.op('Squeeze', [g.op('Shape', [positions])])]); // P+S
    const totalLength = g.op('Cast', [total], { to: TO_INT32 }); // int32 scalar
    const seqlensK = g.op('Expand', [g.op('Cast', [g.op('Sub', [total, g.int64([1], [])])], { to: TO_INT32 }), batchVec]); // int32 [B]
    return { cosCache, sinCache, positionIds, seqlensK, totalLength };
  });
}

/** hidden [B,S,d] -> Gather(logits_index) [B,K,d] -> final norm -> Gemm(transB) -> [B,K,V]. */
function makeLogits(ctx: DecoderContext, x: string, logitsIndex: string, batchVec: string, fused: boolean): string {
  const { g, c } = ctx;
  const selected = g.op('Gather', [x, logitsIndex], { axis: 1 }); // [B,K,d]
  const normed = g.scope('norm', () => makeRmsNorm(ctx, selected, 'model.norm.weight', 'model.norm.weight', fused));
  // Gemm with transB reads the HF [V,d] layout directly, so a tied head shares the embedding table.
  const head = c.tieWordEmbeddings
    ? 'model.embed_tokens.weight'
    : matrixWeight(ctx, 'lm_head.weight', [c.vocabSize, c.hiddenSize], () => ctx.weights.readFloat32('lm_head.weight'));
  let flat = g.op('Reshape', [normed, g.int64([-1, c.hiddenSize])]); // [B*K,d]
  if (ctx.weightType === 'float16') flat = g.op('Cast', [flat], { to: TO_FLOAT16 });
  let logits = g.op('Gemm', [flat, head], { transB: 1 }); // [B*K,V]
  if (ctx.weightType === 'float16') logits = g.op('Cast', [logits], { to: TO_FLOAT32 });
  return g.op('Reshape', [logits, g.op('Concat', [batchVec, g.int64([-1, c.vocabSize])], { axis: 0 })]); // [B,K,V]
}
