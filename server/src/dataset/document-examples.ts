// One document's training examples — the tokenizing step of the dataset build, shared by the
// in-process path and the tokenizing worker threads.
import type { FimTemplate } from '../model/fim';
import { chunkByLines } from './chunk';
import { type Example, type ExampleContext, makeExample } from './fim-transform';
import { keyedRandom } from './random';

/** Tokens a piece may have so that its FIM example (markers, BOS, end, two cut tokens) fits seqLen. */
function pieceBudget(seqLen: number, template: FimTemplate | undefined): number {
  const overhead = 1 + (template === undefined ? 0 : 3) + (template?.bosId === undefined ? 0 : 1) + 2;
  return Math.max(1, seqLen - overhead);
}

export interface DocumentExamples {
  examples: Example[];
  /** Tokens of the whole text, before FIM markers and end tokens. */
  tokens: number;
}

/** A document's examples: one per piece; each piece draws from its own stream (seed, path, piece). */
export function documentExamples(source: { path: string; text: string }, ctx: ExampleContext, seqLen: number, seed: number): DocumentExamples {
  const ids = ctx.tokenizer.encode(source.text);
  const pieces = chunkByLines(source.text, ids.length, pieceBudget(seqLen, ctx.template));
  const examples = pieces.map((piece, i) => makeExample(piece, ctx, keyedRandom(seed, `${source.path}#${i}`), pieces.length === 1 ? ids : undefined));
  return { examples, tokens: ids.length };
}
