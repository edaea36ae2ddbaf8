// `kiln model logprobs <dir> --tokens 1,2,3 [--out FILE]`: log P(next | prefix) at every position,
// over every row of the output matrix, so any other implementation can be checked against Kiln.
import { writeFileSync } from 'node:fs';
import { loadModel } from '../runtime/load-model';
import { MODEL_OPTIONS, parseCommandArgs, parseModelOptions, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln model logprobs <model-dir> --tokens 1,2,3 [--out FILE] [--ep auto|cpu|webgpu|cuda] [--threads N] [--cache DIR] [--attention fused|plain] [--dtype f32|f16]';

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
  if (!text) throw new UsageError('--tokens is required');
  const items = text.split(',').map((s) => s.trim());
  const tokens = items.map(Number);
  // an empty item is not token 0 (Number('') is 0): "1,,2" and "1,2," are mistakes
  if (items.some((s) => !/^\d+$/.test(s)) || tokens.some((t) => !Number.isSafeInteger(t)))
    throw new UsageError(`--tokens must be comma-separated non-negative integers, got "${text}"`);
  return tokens;
}

export async function runModelLogprobs(args: string[], out: (text: string) => void): Promise<number> {
  const { dir, tokens, outFile, options } = withUsage(USAGE, () => {
    const { values, positionals } = parseCommandArgs(args, { ...MODEL_OPTIONS, tokens: { type: 'string' }, out: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model folder');
    return { dir: positionals[0]!, tokens: parseTokenList(values.tokens), outFile: values.out, options: parseModelOptions(values) };
  });
  const loaded = await loadModel(dir, options);
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
    if (outFile) writeFileSync(outFile, text);
    else out(text);
  } finally {
    await loaded.session.release();
  }
  return 0;
}
