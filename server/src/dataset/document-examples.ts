// One document's training examples — the tokenizing step of the dataset build, shared by the
// in-process path and the tokenizing worker threads.
import type { FimTemplate } from '../model/fim';
import { chunkByLines } from './chunk';
import { cursorBlocks } from './cursor-blocks';
import type { CursorContext } from './example-context';
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
  /** Tokens of the context block before its examples, on average (0 without one). */
  contextTokens: number;
}

/**
 * A document's examples: one per piece; each piece draws from its own stream (seed, path, piece).
 * With `context`, every piece starts with the context block the editor would build at its example's
 * cursor (where its middle starts; a plain example's is where the piece starts), and pieces are cut
 * shorter by the longest the block may be so each example still fits seqLen.
 */
export function documentExamples(source: { path: string; text: string; context?: CursorContext }, ctx: ExampleContext, seqLen: number, seed: number): DocumentExamples {
  const ids = ctx.tokenizer.encode(source.text);
  const blocks = source.context === undefined || ctx.template === undefined ? undefined : cursorBlocks(source.path, source.context, ctx.tokenizer, ctx.template);
  const pieces = chunkByLines(source.text, ids.length, Math.max(1, pieceBudget(seqLen, ctx.template) - (blocks?.room ?? 0)));
  let blockTokens = 0;
  let start = 0;
  const examples = pieces.map((piece, i) => {
    const pieceStart = start;
    start += piece.length;
    const withContext: ExampleContext =
      blocks === undefined
        ? ctx
        : {
            ...ctx,
            contextAt: (cursor) => {
              const tokens = blocks.at(pieceStart + cursor);
              blockTokens += tokens.length;
              return tokens;
            },
          };
    return makeExample(piece, withContext, keyedRandom(seed, `${source.path}#${i}`), pieces.length === 1 ? ids : undefined);
  });
  return { examples, tokens: ids.length, contextTokens: examples.length === 0 ? 0 : blockTokens / examples.length };
}
