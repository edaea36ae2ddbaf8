import { join } from 'node:path';
import { ModelFileError } from './errors';
import { MODEL_FILE_CAPS, readModelJson } from './read-model-file';

export type ModelType = 'llama' | 'qwen2' | 'mistral';
const SUPPORTED_TYPES: readonly ModelType[] = ['llama', 'qwen2', 'mistral'];

/** The decoder hyper-parameters Kiln needs, parsed from a Hugging Face `config.json`. */
export interface ModelConfig {
  modelType: ModelType;
  hiddenSize: number; // d
  numLayers: number;
  numHeads: number; // H (query heads)
  numKvHeads: number; // Hkv (GQA when < H)
  headDim: number; // D = d / H unless the checkpoint says otherwise
  intermediateSize: number; // MLP width
  vocabSize: number; // rows of the embedding and the LM head (may exceed the tokenizer's vocabulary)
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** Linear RoPE scaling divides positions by this factor; 1 when none. */
  ropeLinearFactor: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (qwen2). */
  attentionBias: boolean;
  bosTokenId?: number;
  eosTokenId?: number;
}

type Json = Record<string, unknown>;

/** Context length assumed when config.json does not say (LLaMA-2's). */
const DEFAULT_MAX_POSITIONS = 4096;

/**
 * The range each config.json number must lie in. Generous for real LLaMA-family models up to ~70B and
 * beyond (Llama-3-70B: d 8192, 80 layers, 64 heads, MLP 28672, vocab 128256); tight enough that a
 * hostile file can never size an allocation (num_hidden_layers: 1e9 once ran the server out of memory)
 * and that every value keeps the forward pass finite (rope_theta 0 or a negative rms_norm_eps gave NaN
 * logits for every completion).
 */
export const CONFIG_BOUNDS = {
  hidden_size: { min: 1, max: 65_536, integer: true },
  num_hidden_layers: { min: 1, max: 1024, integer: true },
  num_attention_heads: { min: 1, max: 1024, integer: true },
  num_key_value_heads: { min: 1, max: 1024, integer: true },
  head_dim: { min: 2, max: 1024, integer: true },
  intermediate_size: { min: 1, max: 262_144, integer: true },
  vocab_size: { min: 1, max: 1_048_576, integer: true },
  max_position_embeddings: { min: 1, max: 10_000_000, integer: true },
  rms_norm_eps: { min: 1e-12, max: 1, integer: false },
  rope_theta: { min: 1, max: 1e12, integer: false },
  'rope_scaling.factor': { min: 1e-3, max: 1024, integer: false },
  sliding_window: { min: 1, max: 1e15, integer: true },
  bos_token_id: { min: 0, max: 1_048_575, integer: true },
  eos_token_id: { min: 0, max: 1_048_575, integer: true },
} as const satisfies Record<string, { min: number; max: number; integer: boolean }>;

export type BoundedField = keyof typeof CONFIG_BOUNDS;

/** Query heads × head size: q_proj's rows (Llama-3-70B has 8192). */
const MAX_ATTENTION_WIDTH = 262_144;

function describeRange(field: BoundedField): string {
  const b = CONFIG_BOUNDS[field];
  return b.integer ? `an integer from ${b.min} to ${b.max}` : `a number from ${b.min} to ${b.max}`;
}

/** A config number inside its CONFIG_BOUNDS range; `key` is read from `json`, `field` names it. */
function bounded(json: Json, key: string, file: string, options: { field?: BoundedField; fallback?: number } = {}): number {
  const field = options.field ?? (key as BoundedField);
  const v = json[key];
  if (v === undefined || v === null) {
    if (options.fallback !== undefined) return options.fallback;
    throw new ModelFileError(file, `missing required field "${key}"`);
  }
  const b = CONFIG_BOUNDS[field];
  const inRange = typeof v === 'number' && Number.isFinite(v) && (!b.integer || Number.isInteger(v)) && v >= b.min && v <= b.max;
  if (!inRange) throw new ModelFileError(file, `${field} must be ${describeRange(field)} (got ${typeof v === 'number' ? String(v) : JSON.stringify(v)})`);
  return v;
}

/** A token id, or the first of a list of them (eos lists); absent when null or an empty list. */
function firstId(json: Json, key: 'bos_token_id' | 'eos_token_id', file: string): number | undefined {
  const v = json[key];
  const first: unknown = Array.isArray(v) ? v[0] : v;
  if (first === undefined || first === null) return undefined;
  return bounded({ [key]: first }, key, file);
}

function parseRopeScaling(json: Json, file: string): number {
  const scaling = json.rope_scaling;
  if (scaling === undefined || scaling === null) return 1;
  if (typeof scaling !== 'object') throw new ModelFileError(file, `"rope_scaling" must be an object or null`);
  const s = scaling as Json;
  const kind = s.rope_type ?? s.type;
  if (kind === 'default') return 1;
  if (kind !== 'linear') throw new ModelFileError(file, `unsupported rope_scaling type ${JSON.stringify(kind)} (supported: linear or none)`);
  return bounded(s, 'factor', file, { field: 'rope_scaling.factor' });
}

/** head_dim as given (Qwen3-style widths need not equal hidden_size), else hidden_size / heads, which must divide. */
function headDimOf(j: Json, file: string, hiddenSize: number, numHeads: number): number {
  if ((j.head_dim === undefined || j.head_dim === null) && hiddenSize % numHeads !== 0) {
    throw new ModelFileError(file, `hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads}) when head_dim is not given`);
  }
  // the derived width is held to the same bounds as a given one
  const headDim = bounded({ head_dim: j.head_dim ?? hiddenSize / numHeads }, 'head_dim', file);
  if (headDim % 2 !== 0) throw new ModelFileError(file, `head_dim must be even for RoPE, got ${headDim}`);
  if (numHeads * headDim > MAX_ATTENTION_WIDTH) {
    throw new ModelFileError(file, `num_attention_heads × head_dim must be at most ${MAX_ATTENTION_WIDTH} (got ${numHeads} × ${headDim})`);
  }
  return headDim;
}

/** Validates a parsed `config.json` object; `file` names it in errors. */
export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(file, 'expected a JSON object');
  const j = json as Json;
  const modelType = j.model_type;
  if (typeof modelType !== 'string' || !SUPPORTED_TYPES.includes(modelType as ModelType)) {
    throw new ModelFileError(file, `unsupported model_type ${JSON.stringify(modelType)} (supported: ${SUPPORTED_TYPES.join(', ')})`);
  }
  const maxPositions = bounded(j, 'max_position_embeddings', file, { fallback: DEFAULT_MAX_POSITIONS });
  if (modelType === 'mistral' && j.sliding_window !== undefined && j.sliding_window !== null) {
    // a window at least as long as the context Kiln will use is full attention
    if (typeof j.sliding_window !== 'number' || bounded(j, 'sliding_window', file) < maxPositions) {
      throw new ModelFileError(file, `mistral with sliding_window=${JSON.stringify(j.sliding_window)} is not supported (only full attention)`);
    }
  }
  if (modelType === 'qwen2' && j.use_sliding_window === true) {
    throw new ModelFileError(file, 'qwen2 with use_sliding_window=true is not supported (only full attention)');
  }
  const hiddenAct = j.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') throw new ModelFileError(file, `unsupported hidden_act ${JSON.stringify(hiddenAct)} (supported: silu)`);
  if (j.mlp_bias === true) throw new ModelFileError(file, 'mlp_bias=true is not supported');

  const hiddenSize = bounded(j, 'hidden_size', file);
  const numHeads = bounded(j, 'num_attention_heads', file);
  const numKvHeads = bounded(j, 'num_key_value_heads', file, { fallback: numHeads });
  if (numHeads % numKvHeads !== 0) throw new ModelFileError(file, `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = headDimOf(j, file, hiddenSize, numHeads);
  const partialRotary = j.partial_rotary_factor;
  if (partialRotary !== undefined && partialRotary !== 1) throw new ModelFileError(file, `partial_rotary_factor=${JSON.stringify(partialRotary)} is not supported`);

  return {
    modelType: modelType as ModelType,
    hiddenSize,
    numLayers: bounded(j, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: bounded(j, 'intermediate_size', file),
    vocabSize: bounded(j, 'vocab_size', file),
    maxPositions,
    rmsNormEps: bounded(j, 'rms_norm_eps', file, { fallback: 1e-6 }),
    ropeTheta: bounded(j, 'rope_theta', file, { fallback: 10000 }),
    ropeLinearFactor: parseRopeScaling(j, file),
    tieWordEmbeddings: j.tie_word_embeddings === true,
    // qwen2 always has q/k/v bias; llama/mistral have it only when attention_bias says so.
    attentionBias: modelType === 'qwen2' ? true : j.attention_bias === true,
    bosTokenId: firstId(j, 'bos_token_id', file),
    eosTokenId: firstId(j, 'eos_token_id', file),
  };
}

/** Reads and validates `<dir>/config.json` (a bounded read of a regular file). */
export function loadModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const json = readModelJson(file, { maxBytes: MODEL_FILE_CAPS.config, missing: 'not found: a model folder needs a Hugging Face config.json' });
  return parseModelConfig(json, file);
}

/** Writes the HF `config.json` fields Kiln reads (used by exports and test fixtures). */
export function toHfConfigJson(c: ModelConfig): Record<string, unknown> {
  return {
    architectures: [c.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : c.modelType === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM'],
    model_type: c.modelType,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    intermediate_size: c.intermediateSize,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeLinearFactor === 1 ? null : { type: 'linear', factor: c.ropeLinearFactor },
    tie_word_embeddings: c.tieWordEmbeddings,
    ...(c.modelType === 'qwen2' ? {} : { attention_bias: c.attentionBias }),
    hidden_act: 'silu',
    torch_dtype: 'float32',
    ...(c.bosTokenId !== undefined ? { bos_token_id: c.bosTokenId } : {}),
    ...(c.eosTokenId !== undefined ? { eos_token_id: c.eosTokenId } : {}),
  };
}
