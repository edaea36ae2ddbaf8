// `kiln model logprobs <dir> --tokens 1,2,3 [--out FILE]`: log P(next | prefix) at every position,
// over every row of the output matrix, so any other implementation can be checked against Kiln.
import { writeFileSync } from 'node:fs';
import { loadModel } from '../runtime/load-model';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, UsageError } from './cli-args';

const USAGE = 'usage: kiln model logprobs <model-dir> --tokens 1,2,3 [--out FILE] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--dtype f32|f16]';

export interface LogprobsDocument {
  format: 'logprobs-v1';
  source: 'kiln';
  n_tokens: number;
  n_vocab: number;
  tokens: number[];
  logprobs: number[][];
}

/** Natural-log softmax of row `t` of logits [T, V], in float64. */
export function logSoftmaxRow(logits: Float32Array, t: number, V: number): number[] {
  const row = logits.subarray(t * V, (t + 1) * V);
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Array.from(row, (v) => v - lse);
}

export function parseTokenList(text: string | undefined): number[] {
  if (!text) throw new UsageError(`--tokens is required\n${USAGE}`);
  const tokens = text.split(',').map((s) => Number(s.trim()));
  if (tokens.some((t) => !Number.isInteger(t) || t < 0)) throw new UsageError(`--tokens must be comma-separated non-negative integers, got "${text}"`);
  return tokens;
}

export async function runModelLogprobs(args: string[], out: (text: string) => void): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...MODEL_OPTIONS, tokens: { type: 'string' }, out: { type: 'string' } }, USAGE);
  if (positionals.length !== 1) throw new UsageError(`expected one model folder\n${USAGE}`);
  const tokens = parseTokenList(values.tokens);
  const loaded = await loadModel(positionals[0]!, parseModelOptions(values));
  try {
    const { logits } = await loaded.session.forward(loaded.session.newState(), [tokens], 'all');
    const V = loaded.config.vocabSize;
    const doc: LogprobsDocument = {
      format: 'logprobs-v1',
      source: 'kiln',
      n_tokens: tokens.length,
      n_vocab: V,
      tokens,
      logprobs: tokens.map((_, t) => logSoftmaxRow(logits, t, V)),
    };
    const text = JSON.stringify(doc);
    if (values.out) writeFileSync(values.out, text);
    else out(text);
  } finally {
    await loaded.session.release();
  }
  return 0;
}
