// A seeded tiny FIM code model folder for the server and the CLI: random llama weights, the tiny
// byte-level BPE tokenizer with Qwen2.5-Coder's special tokens, and `kiln.json` naming the trained
// FIM orders (SPM by default, so typing at the cursor only appends prompt tokens).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../../server/src/model/config';
import type { FimOrder } from '../../server/src/model/fim';
import { makeTinyWeights, TINY_LLAMA, writeTinyCheckpoint } from './tiny-model';
import { writeTinyTokenizer } from './tiny-tokenizer';

export interface TinyCodeModelOptions {
  seed?: number;
  /** Room for a ~1,000-token prompt plus the completion (default 2048). */
  maxPositions?: number;
  fimOrders?: FimOrder[];
  /**
   * Weights that never stop: the final norm keeps one hidden unit and the LM head reads it into '+'
   * (positive) or '-' (negative), every other logit 0, so greedy decoding emits only '+' and '-' —
   * no newline, no stop token — until a token limit, a deadline or an abort. For scheduler tests.
   */
  endless?: boolean;
  /** Fields over TINY_LLAMA's (e.g. a larger vocabulary: the tokenizer gets the same size). */
  config?: Partial<ModelConfig>;
}

export function writeTinyCodeModel(dir: string, options: TinyCodeModelOptions = {}): string {
  const config = { ...TINY_LLAMA, maxPositions: options.maxPositions ?? 2048, ...options.config };
  const weights = makeTinyWeights(config, options.seed ?? 1);
  if (options.endless) makeEndless(weights.tensors, config.hiddenSize);
  writeTinyCheckpoint(dir, weights);
  writeTinyTokenizer(dir, { vocabSize: config.vocabSize });
  writeFileSync(join(dir, 'kiln.json'), JSON.stringify({ fimOrders: options.fimOrders ?? ['spm'] }));
  return dir;
}

function makeEndless(tensors: Map<string, Float32Array>, hidden: number): void {
  const norm = tensors.get('model.norm.weight')!; // [H]
  norm.fill(0);
  norm[0] = 1;
  const head = tensors.get('lm_head.weight')!; // [V, H]
  head.fill(0);
  // punctuation, not letters: the stop rules cut a run of one letter as a degenerate loop
  head['+'.charCodeAt(0) * hidden] = 1;
  head['-'.charCodeAt(0) * hidden] = -1;
}

/** Settings for tests: the CPU, one thread, greedy, no speculation (so every model call is a request). */
export const TEST_SETTINGS = {
  executionProvider: 'cpu',
  threads: 1,
  temperature: 0,
  speculate: false,
} as const;
