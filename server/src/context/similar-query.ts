// The similar source's query and ranking: the index answers for the lines before the cursor, in the
// editor and at each fine-tune example's cursor alike (dataset/example-context.ts).
import { identifierSet } from './identifiers';

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
