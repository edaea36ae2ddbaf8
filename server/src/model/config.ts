import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFileError } from './errors';

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

function num(json: Json, key: string, file: string, fallback?: number): number {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelFileError(file, `missing required field "${key}"`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFileError(file, `field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function positiveInt(json: Json, key: string, file: string, fallback?: number): number {
  const v = num(json, key, file, fallback);
  if (!Number.isInteger(v) || v <= 0) throw new ModelFileError(file, `field "${key}" must be a positive integer, got ${v}`);
  return v;
}

function firstId(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return undefined;
}

function parseRopeScaling(json: Json, file: string): number {
  const scaling = json.rope_scaling;
  if (scaling === undefined || scaling === null) return 1;
  if (typeof scaling !== 'object') throw new ModelFileError(file, `"rope_scaling" must be an object or null`);
  const s = scaling as Json;
  const kind = s.rope_type ?? s.type;
  if (kind === 'default') return 1;
  if (kind !== 'linear') throw new ModelFileError(file, `unsupported rope_scaling type ${JSON.stringify(kind)} (supported: linear or none)`);
  const factor = num(s, 'factor', file);
  if (factor <= 0) throw new ModelFileError(file, `rope_scaling.factor must be positive, got ${factor}`);
  return factor;
}

/** Validates a parsed `config.json` object; `file` names it in errors. */
export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(file, 'expected a JSON object');
  const j = json as Json;
  const modelType = j.model_type;
  if (typeof modelType !== 'string' || !SUPPORTED_TYPES.includes(modelType as ModelType)) {
    throw new ModelFileError(file, `unsupported model_type ${JSON.stringify(modelType)} (supported: ${SUPPORTED_TYPES.join(', ')})`);
  }
  const maxPositions = positiveInt(j, 'max_position_embeddings', file, DEFAULT_MAX_POSITIONS);
  if (modelType === 'mistral' && j.sliding_window !== undefined && j.sliding_window !== null) {
    // a window at least as long as the context Kiln will use is full attention
    if (typeof j.sliding_window !== 'number' || j.sliding_window < maxPositions) {
      throw new ModelFileError(file, `mistral with sliding_window=${JSON.stringify(j.sliding_window)} is not supported (only full attention)`);
    }
  }
  if (modelType === 'qwen2' && j.use_sliding_window === true) {
    throw new ModelFileError(file, 'qwen2 with use_sliding_window=true is not supported (only full attention)');
  }
  const hiddenAct = j.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') throw new ModelFileError(file, `unsupported hidden_act ${JSON.stringify(hiddenAct)} (supported: silu)`);
  if (j.mlp_bias === true) throw new ModelFileError(file, 'mlp_bias=true is not supported');

  const hiddenSize = positiveInt(j, 'hidden_size', file);
  const numHeads = positiveInt(j, 'num_attention_heads', file);
  const numKvHeads = positiveInt(j, 'num_key_value_heads', file, numHeads);
  if (numHeads % numKvHeads !== 0) throw new ModelFileError(file, `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  const headDim = positiveInt(j, 'head_dim', file, hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new ModelFileError(file, `head_dim must be even for RoPE, got ${headDim}`);
  const partialRotary = j.partial_rotary_factor;
  if (partialRotary !== undefined && partialRotary !== 1) throw new ModelFileError(file, `partial_rotary_factor=${JSON.stringify(partialRotary)} is not supported`);

  return {
    modelType: modelType as ModelType,
    hiddenSize,
    numLayers: positiveInt(j, 'num_hidden_layers', file),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: positiveInt(j, 'intermediate_size', file),
    vocabSize: positiveInt(j, 'vocab_size', file),
    maxPositions,
    rmsNormEps: num(j, 'rms_norm_eps', file, 1e-6),
    ropeTheta: num(j, 'rope_theta', file, 10000),
    ropeLinearFactor: parseRopeScaling(j, file),
    tieWordEmbeddings: j.tie_word_embeddings === true,
    // qwen2 always has q/k/v bias; llama/mistral have it only when attention_bias says so.
    attentionBias: modelType === 'qwen2' ? true : j.attention_bias === true,
    bosTokenId: firstId(j.bos_token_id),
    eosTokenId: firstId(j.eos_token_id),
  };
}

/** Reads and validates `<dir>/config.json`. */
export function loadModelConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ModelFileError(file, missing ? 'not found: a model folder needs a Hugging Face config.json' : `cannot read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelFileError(file, `invalid JSON: ${(err as Error).message}`);
  }
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
