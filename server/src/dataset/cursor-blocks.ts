// The context block of one training example, chosen at its cursor as the editor would choose it
// there: the document's imports, and the similar windows ranked for the lines before the cursor from
// the pool dataset/example-context.ts gathered for the whole document. Blocks with the same snippets
// are tokenized once per document.
import { buildContextBlock } from '../context/block';
import { memoized } from '../context/memo';
import { cursorQuery, poolWindows, rankPool } from '../context/similar-query';
import type { FimTemplate } from '../model/fim';
import type { DocumentContext } from './document-examples';
import type { ExampleTokenizer } from './fim-transform';

export interface CursorBlocks {
  /** Tokens the longest block may take: what each piece of the document leaves room for. */
  readonly room: number;
  /** The block's token ids for a cursor at char `offset` of the document (empty when nothing was chosen). */
  at(offset: number): readonly number[];
}

export function cursorBlocks(source: { path: string; text: string; context: DocumentContext }, tokenizer: ExampleTokenizer, template: FimTemplate): CursorBlocks {
  const { context } = source;
  // a document's blocks share most of their snippets: each text is tokenized once
  const encode = memoized((text: string) => tokenizer.encode(text));
  const build = (candidates: DocumentContext['snippets']) =>
    buildContextBlock({ candidates, currentPath: source.path, repoName: context.repoName, maxTokens: context.maxTokens, encode, template });
  if (context.similarPool === undefined || context.similarPool.length === 0) {
    // one block for every cursor: pieces need only its own length of room
    const tokens = build(context.snippets).tokens;
    return { room: tokens.length, at: () => tokens };
  }
  const pool = poolWindows(context.similarPool);
  const built = new Map<string, readonly number[]>();
  return {
    room: context.maxTokens,
    at(offset) {
      const similar = rankPool(pool, cursorQuery(source.text, offset));
      const key = similar.map((s) => `${s.path}\0${s.startLine}`).join('\n');
      let tokens = built.get(key);
      if (tokens === undefined) {
        tokens = build([...context.snippets, ...similar]).tokens;
        built.set(key, tokens);
      }
      return tokens;
    },
  };
}
