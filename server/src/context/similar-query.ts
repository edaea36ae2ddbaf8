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

/** A window with its similarity to a query; `order` breaks ties (the earlier window wins). */
export interface ScoredWindow {
  path: string;
  order: number;
  score: number;
}

/** The best window of each file scoring at least `minScore`, best first, at most `limit` of them. */
export function bestPerFile<T extends ScoredWindow>(scored: Iterable<T>, limit: number, minScore: number): T[] {
  const best = new Map<string, T>();
  for (const s of scored) {
    if (s.score < minScore) continue;
    const known = best.get(s.path);
    if (known === undefined || s.score > known.score || (s.score === known.score && s.order < known.order)) best.set(s.path, s);
  }
  return [...best.values()].sort((a, b) => b.score - a.score || a.order - b.order).slice(0, limit);
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
  const scored = pool.map((w, order) => ({ path: w.snippet.path, order, score: jaccard(query, w.ids), snippet: w.snippet }));
  return bestPerFile(scored, SIMILAR_LIMIT, MIN_SIMILARITY).map((s) => ({ ...s.snippet, score: s.score }));
}
