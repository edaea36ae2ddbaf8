// The context block of one training example, chosen at its cursor as the editor would choose it
// there: the candidates of the document's repository context at that cursor, made into the editor's
// block. Blocks with the same snippets, and each snippet's text, are tokenized once per document.
import { buildContextBlock, snippetKey } from '../context/block';
import { memoized } from '../context/memo';
import type { FimTemplate } from '../model/fim';
import type { CursorContext } from './example-context';
import type { ExampleTokenizer } from './fim-transform';

export interface CursorBlocks {
  /** Tokens the longest block may take: what each piece of the document leaves room for. */
  readonly room: number;
  /** The block's token ids for a cursor at char `offset` of the document (empty when nothing was chosen). */
  at(offset: number): readonly number[];
}

export function cursorBlocks(path: string, context: CursorContext, tokenizer: ExampleTokenizer, template: FimTemplate): CursorBlocks {
  // a document's blocks share most of their snippets: each text is tokenized once
  const encode = memoized((text: string) => tokenizer.encode(text));
  const built = new Map<string, readonly number[]>();
  return {
    room: context.maxTokens,
    at(offset) {
      const candidates = context.candidatesAt(offset);
      // the block keeps the best-ranked candidates that fit: the same snippets with other scores may differ
      const key = candidates.map((c) => `${snippetKey(c)}\0${c.score}`).join('\n');
      let tokens = built.get(key);
      if (tokens === undefined) {
        tokens = buildContextBlock({ candidates, currentPath: path, repoName: context.repoName, maxTokens: context.maxTokens, encode, template }).tokens;
        built.set(key, tokens);
      }
      return tokens;
    },
  };
}
