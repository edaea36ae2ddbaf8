// One document's training examples — the tokenizing step of the dataset build, shared by the
// in-process path and the tokenizing worker threads.
import { buildContextBlock } from '../context/block';
import type { ContextSnippet } from '../context/snippet';
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
  /** Tokens of the context block before each of its examples (0 without one). */
  contextTokens: number;
}

/** Snippets of the workspace's other files chosen for a document (dataset/example-context.ts), and the block's limit. */
export interface DocumentContext {
  repoName: string;
  snippets: ContextSnippet[];
  maxTokens: number;
}

/**
 * A document's examples: one per piece; each piece draws from its own stream (seed, path, piece).
 * With `context`, every piece starts with the same context block, and pieces are cut shorter by its
 * length so each example still fits seqLen.
 */
export function documentExamples(source: { path: string; text: string; context?: DocumentContext }, ctx: ExampleContext, seqLen: number, seed: number): DocumentExamples {
  const ids = ctx.tokenizer.encode(source.text);
  const contextIds =
    source.context === undefined || ctx.template === undefined
      ? []
      : buildContextBlock({
          candidates: source.context.snippets,
          currentPath: source.path,
          repoName: source.context.repoName,
          maxTokens: source.context.maxTokens,
          encode: (t) => ctx.tokenizer.encode(t),
          template: ctx.template,
        }).tokens;
  const withContext: ExampleContext = contextIds.length > 0 ? { ...ctx, contextIds } : ctx;
  const pieces = chunkByLines(source.text, ids.length, Math.max(1, pieceBudget(seqLen, ctx.template) - contextIds.length));
  const examples = pieces.map((piece, i) => makeExample(piece, withContext, keyedRandom(seed, `${source.path}#${i}`), pieces.length === 1 ? ids : undefined));
  return { examples, tokens: ids.length, contextTokens: contextIds.length };
}
