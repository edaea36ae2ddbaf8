// The similar source's query and ranking, shared by the editor (the index answers for the lines
// before the cursor) and the fine-tune's examples (a document's pool of windows is ranked again at
// each example's cursor, dataset/cursor-blocks.ts), so both pick windows by the same rule.
import { identifierSet, jaccard } from './identifiers';
import type { ContextSnippet } from './snippet';

/** Lines before the cursor's line whose identifiers make the similarity query. */
export const QUERY_LINES = 12;
/** Similar windows asked for (the block keeps what fits). */
export const SIMILAR_LIMIT = 6;
/** Below this Jaccard similarity a window is not worth its tokens. */
export const MIN_SIMILARITY = 0.1;

/** The identifiers of the QUERY_LINES whole lines before the line holding char `offset` of `text`. */
export function cursorQuery(text: string, offset: number): Set<string> {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  let from = lineStart;
  for (let n = 0; n < QUERY_LINES && from > 0; n++) from = text.lastIndexOf('\n', from - 2) + 1;
  return identifierSet(text.slice(from, lineStart));
}

/**
 * The best window of each file scoring at least `minScore`, gathered one offer at a time (a query
 * looks at thousands of windows: only each file's best is kept); `order` breaks ties, the earlier wins.
 */
export class BestPerFile<T> {
  private readonly best = new Map<string, { order: number; score: number; item: T }>();

  constructor(private readonly minScore: number) {}

  offer(path: string, order: number, score: number, item: T): void {
    if (score < this.minScore) return;
    const known = this.best.get(path);
    if (known === undefined) this.best.set(path, { order, score, item });
    else if (score > known.score || (score === known.score && order < known.order)) {
      known.order = order;
      known.score = score;
      known.item = item;
    }
  }

  /** Best first, at most `limit`. */
  top(limit: number): { score: number; item: T }[] {
    return [...this.best.values()].sort((a, b) => b.score - a.score || a.order - b.order).slice(0, limit);
  }
}

/** A pool's window with its identifier set, computed once per document. */
export interface PoolWindow {
  snippet: ContextSnippet;
  ids: ReadonlySet<string>;
}

export function poolWindows(pool: readonly ContextSnippet[]): PoolWindow[] {
  return pool.map((snippet) => ({ snippet, ids: identifierSet(snippet.text) }));
}

/** The similar snippets for `query` among a pool's windows, ranked as the index ranks its own (pool order breaks ties). */
export function rankPool(pool: readonly PoolWindow[], query: ReadonlySet<string>): ContextSnippet[] {
  if (query.size === 0) return [];
  const best = new BestPerFile<ContextSnippet>(MIN_SIMILARITY);
  for (const [order, w] of pool.entries()) best.offer(w.snippet.path, order, jaccard(query, w.ids), w.snippet);
  return best.top(SIMILAR_LIMIT).map(({ score, item }) => ({ ...item, score }));
}
