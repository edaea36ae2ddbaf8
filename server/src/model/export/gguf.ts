// Hugging Face checkpoint (config + safetensors + tokenizer.json) -> GGUF in llama.cpp's conventions.
//
//   HF name                                   GGUF name                 note
//   model.embed_tokens.weight     [V, d]      token_embd.weight
//   model.layers.N.input_layernorm            blk.N.attn_norm           F32 always
//   model.layers.N.self_attn.q_proj (+bias)   blk.N.attn_q (+bias)      rows permuted for `llama`
//   model.layers.N.self_attn.k_proj (+bias)   blk.N.attn_k (+bias)      rows permuted for `llama`
//   model.layers.N.self_attn.v_proj (+bias)   blk.N.attn_v (+bias)
//   model.layers.N.self_attn.o_proj           blk.N.attn_output
//   model.layers.N.post_attention_layernorm   blk.N.ffn_norm            F32 always
//   model.layers.N.mlp.{gate,up,down}_proj    blk.N.ffn_{gate,up,down}
//   model.norm.weight                         output_norm.weight        F32 always
//   lm_head.weight                [V, d]      output.weight             omitted when tied: llama.cpp
//                                                                       reuses token_embd (llama and qwen2)
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ModelConfig } from '../config';
import { openCheckpoint, type Checkpoint } from '../checkpoint';
import { ModelFileError } from '../errors';
import { Tokenizer, type ExportedVocabulary, type TokenType } from '../tokenizer';
import { GGML_BLOCK } from './ggml-quants';
import { kv, writeGguf, type GgmlTypeName, type GgufKv, type GgufTensor } from './gguf-writer';

export type GgufDtype = 'f32' | 'f16' | 'q8_0' | 'q4_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];
/** ggml type of the matrices and llama_ftype (general.file_type) per export dtype. */
const DTYPE: Record<GgufDtype, { matrix: GgmlTypeName; fileType: number }> = {
  f32: { matrix: 'F32', fileType: 0 }, // ALL_F32
  f16: { matrix: 'F16', fileType: 1 }, // MOSTLY_F16
  q4_0: { matrix: 'Q4_0', fileType: 2 }, // MOSTLY_Q4_0
  q8_0: { matrix: 'Q8_0', fileType: 7 }, // MOSTLY_Q8_0
};
export type GgufArchitecture = 'llama' | 'qwen2';

export interface GgufExportOptions {
  dtype: GgufDtype;
  /** general.name; defaults to the model folder's name. */
  name?: string;
}

export interface GgufExportResult {
  path: string;
  architecture: GgufArchitecture;
  tensorCount: number;
  bytes: number;
  /** Tokens appended as `[PAD{i}]` so the vocabulary matches the embedding rows. */
  paddedTokens: number;
}

/** llama.cpp's token_type values (llama_token_type). */
const TOKEN_TYPE: Record<TokenType, number> = { normal: 1, control: 3, user_defined: 4, unused: 5, byte: 6 };

/** llama.cpp architecture for a HF model_type: mistral (full attention) is `llama` there. */
export function ggufArchitecture(c: ModelConfig): GgufArchitecture {
  return c.modelType === 'qwen2' ? 'qwen2' : 'llama';
}

/**
 * Pre-tokenizer names that llama.cpp (as bundled in node-llama-cpp 3.21.1) accepts for
 * `tokenizer.ggml.pre`; an unknown name makes it refuse the file (each is loaded in the llama.cpp test).
 */
const LLAMA_CPP_PRE = new Set(['default', 'qwen2', 'llama-bpe', 'gpt-2', 'deepseek-coder', 'deepseek-llm', 'starcoder', 'smollm']);

/** The `tokenizer.ggml.pre` value for a tokenizer's pre-tokenizer description; `default` when unknown. */
export function llamaCppPreTokenizer(pre: string): string {
  const p = pre.toLowerCase();
  if (LLAMA_CPP_PRE.has(p)) return p;
  if (p === 'llama3' || p === 'llama-3') return 'llama-bpe';
  if (p === 'gpt2' || p === 'bytelevel') return 'gpt-2';
  return 'default';
}

/**
 * Reorders the rows of a Q or K projection from HF's rotate_half layout, where RoPE pairs dimension
 * i with i + D/2, to llama.cpp's `llama` layout, where it pairs 2i with 2i + 1 (per head).
 * `w` is [heads * D, cols] row-major (cols = 1 for a bias).
 */
export function permuteRotaryRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  if (w.length !== heads * headDim * cols) throw new Error(`permuteRotaryRows: ${w.length} values, expected ${heads}x${headDim}x${cols}`);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * headDim + j * half + i) * cols; // HF row: first or second half of the head
        const dst = (h * headDim + 2 * i + j) * cols; // GGUF row: adjacent pair
        out.set(w.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/** The tensor list in GGUF order: embeddings, blocks, final norm, head. Data is read lazily. */
export function ggufTensors(ckpt: Checkpoint, dtype: GgufDtype): GgufTensor[] {
  const c = ckpt.config;
  const arch = ggufArchitecture(c);
  const weightType = DTYPE[dtype].matrix;
  const read = (hf: string) => () => ckpt.weights.readFloat32(hf);
  // [rows, cols] shape as stored in the checkpoint (already validated by openCheckpoint)
  const shapeOf = (hf: string) => ckpt.weights.info(hf).shape;
  const matrix = (gguf: string, hf: string, rotaryHeads?: number): GgufTensor => {
    const shape = shapeOf(hf);
    const cols = shape.length === 2 ? shape[1]! : 1;
    const data = rotaryHeads && arch === 'llama' ? () => permuteRotaryRows(ckpt.weights.readFloat32(hf), rotaryHeads, c.headDim, cols) : read(hf);
    // 1-D tensors (norms, biases) stay F32: ggml adds/multiplies them in F32; rows that are not whole
    // quantization blocks stay F16
    const type = shape.length === 1 ? 'F32' : cols % GGML_BLOCK !== 0 && weightType.startsWith('Q') ? 'F16' : weightType;
    return { name: gguf, shape, type, data };
  };

  const list: GgufTensor[] = [matrix('token_embd.weight', 'model.embed_tokens.weight')];
  for (let l = 0; l < c.numLayers; l++) {
    const hf = `model.layers.${l}`;
    const g = `blk.${l}`;
    list.push(
      matrix(`${g}.attn_norm.weight`, `${hf}.input_layernorm.weight`),
      matrix(`${g}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, c.numHeads), // [H*D, d]
      matrix(`${g}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, c.numKvHeads), // [Hkv*D, d]
      matrix(`${g}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`), // [Hkv*D, d]
    );
    if (c.attentionBias) {
      list.push(
        matrix(`${g}.attn_q.bias`, `${hf}.self_attn.q_proj.bias`, c.numHeads), // [H*D]
        matrix(`${g}.attn_k.bias`, `${hf}.self_attn.k_proj.bias`, c.numKvHeads), // [Hkv*D]
        matrix(`${g}.attn_v.bias`, `${hf}.self_attn.v_proj.bias`), // [Hkv*D]
      );
    }
    list.push(
      matrix(`${g}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`), // [d, H*D]
      matrix(`${g}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`),
      matrix(`${g}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`), // [F, d]
      matrix(`${g}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`), // [F, d]
      matrix(`${g}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`), // [d, F]
    );
  }
  list.push(matrix('output_norm.weight', 'model.norm.weight'));
  if (!c.tieWordEmbeddings) list.push(matrix('output.weight', 'lm_head.weight')); // [V, d]
  return list;
}

/** Tokens, types and merges padded to the embedding's row count (Qwen2.5 has more rows than tokens). */
export function paddedVocabulary(vocab: ExportedVocabulary, vocabSize: number, file: string): { tokens: string[]; types: number[]; padded: number } {
  if (vocab.model !== 'bpe' || !vocab.byteLevel) {
    throw new ModelFileError(file, 'only byte-level BPE tokenizers (GPT-2 style, GGUF "gpt2") can be exported to GGUF so far');
  }
  if (vocab.tokens.length !== vocab.types.length) throw new ModelFileError(file, 'tokenizer tokens and types differ in length');
  if (vocab.tokens.length > vocabSize) {
    throw new ModelFileError(file, `tokenizer has ${vocab.tokens.length} tokens but the model's embedding has only ${vocabSize} rows`);
  }
  const tokens: string[] = [];
  const types: number[] = [];
  let padded = 0;
  for (let i = 0; i < vocabSize; i++) {
    const text = vocab.tokens[i];
    if (text === undefined) {
      // llama.cpp needs one entry per embedding row; the names follow HF→GGUF converters
      tokens.push(`[PAD${i}]`);
      types.push(TOKEN_TYPE.unused);
      padded++;
    } else {
      tokens.push(text);
      types.push(TOKEN_TYPE[vocab.types[i]!]);
    }
  }
  return { tokens, types, padded };
}

/** Whether the tokenizer adds BOS, from tokenizer_config.json when it says so. */
function addBosToken(dir: string, c: ModelConfig): boolean {
  const file = join(dir, 'tokenizer_config.json');
  if (existsSync(file)) {
    try {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>).add_bos_token;
      if (typeof v === 'boolean') return v;
    } catch {
      // an unreadable tokenizer_config.json only loses this hint
    }
  }
  return c.modelType !== 'qwen2'; // Qwen tokenizers add no BOS; LLaMA-style ones do
}

/**
 * Metadata keys: general.*, `{arch}.*` hyper-parameters, tokenizer.ggml.*. `eosId` is the tokenizer's
 * end-of-sequence token (tokenizer_config.json), preferred over config.json's, as HF→GGUF converters do.
 */
export function ggufMetadata(ckpt: Checkpoint, vocab: ExportedVocabulary, options: GgufExportOptions, eosId = ckpt.config.eosTokenId): { metadata: GgufKv[]; padded: number } {
  const c = ckpt.config;
  const arch = ggufArchitecture(c);
  const tokenizerFile = join(ckpt.dir, 'tokenizer.json');
  const { tokens, types, padded } = paddedVocabulary(vocab, c.vocabSize, tokenizerFile);
  const a = (key: string) => `${arch}.${key}`;
  const metadata: GgufKv[] = [
    kv.str('general.architecture', arch),
    kv.str('general.name', options.name ?? basename(resolve(ckpt.dir))),
    kv.u32('general.alignment', 32),
    kv.u32('general.file_type', DTYPE[options.dtype].fileType),
    kv.u32(a('context_length'), c.maxPositions),
    kv.u32(a('embedding_length'), c.hiddenSize),
    kv.u32(a('block_count'), c.numLayers),
    kv.u32(a('feed_forward_length'), c.intermediateSize),
    kv.u32(a('attention.head_count'), c.numHeads),
    kv.u32(a('attention.head_count_kv'), c.numKvHeads),
    kv.u32(a('attention.key_length'), c.headDim),
    kv.u32(a('attention.value_length'), c.headDim),
    kv.f32(a('attention.layer_norm_rms_epsilon'), c.rmsNormEps),
    kv.f32(a('rope.freq_base'), c.ropeTheta),
    kv.u32(a('rope.dimension_count'), c.headDim),
  ];
  if (c.ropeLinearFactor !== 1) {
    metadata.push(kv.str(a('rope.scaling.type'), 'linear'), kv.f32(a('rope.scaling.factor'), c.ropeLinearFactor));
  }
  metadata.push(
    kv.u32(a('vocab_size'), c.vocabSize),
    kv.str('tokenizer.ggml.model', 'gpt2'), // llama.cpp's name for byte-level BPE
    kv.str('tokenizer.ggml.pre', llamaCppPreTokenizer(vocab.preTokenizer)),
    kv.strArray('tokenizer.ggml.tokens', tokens),
    kv.i32Array('tokenizer.ggml.token_type', types),
    kv.strArray('tokenizer.ggml.merges', vocab.merges),
  );
  if (c.bosTokenId !== undefined && c.bosTokenId < c.vocabSize) metadata.push(kv.u32('tokenizer.ggml.bos_token_id', c.bosTokenId));
  if (eosId !== undefined && eosId < c.vocabSize) metadata.push(kv.u32('tokenizer.ggml.eos_token_id', eosId));
  metadata.push(kv.bool('tokenizer.ggml.add_bos_token', addBosToken(ckpt.dir, c)));
  return { metadata, padded };
}

/** Writes `outPath` (atomically) from an opened checkpoint and its vocabulary; `eosId` defaults to the config's. */
export async function writeCheckpointGguf(
  ckpt: Checkpoint,
  vocab: ExportedVocabulary,
  outPath: string,
  options: GgufExportOptions & { eosId?: number },
): Promise<GgufExportResult> {
  const { eosId, ...exportOptions } = options;
  const { metadata, padded } = ggufMetadata(ckpt, vocab, exportOptions, eosId ?? ckpt.config.eosTokenId);
  const tensors = ggufTensors(ckpt, options.dtype);
  const { bytes } = await writeGguf(outPath, metadata, tensors);
  return { path: outPath, architecture: ggufArchitecture(ckpt.config), tensorCount: tensors.length, bytes, paddedTokens: padded };
}

/** Exports a HF model folder to a GGUF file llama.cpp and Ollama load. */
export async function exportGguf(modelDir: string, outPath: string, options: GgufExportOptions): Promise<GgufExportResult> {
  const ckpt = openCheckpoint(modelDir);
  try {
    const tokenizer = Tokenizer.load(modelDir);
    return await writeCheckpointGguf(ckpt, tokenizer.exportVocabulary(), outPath, { ...options, eosId: tokenizer.eosId });
  } finally {
    ckpt.weights.close();
  }
}
