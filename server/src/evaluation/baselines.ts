// Baselines a trained model must beat on next-line completion, scored on the same lines:
//  - previous line: predict the previous non-blank line's content again (code repeats its shape);
//  - token n-gram: the most frequent next token after the last n−1 tokens (backing off to
//    shorter contexts), trained on the same corpus, decoded greedily to the end of the line.
import { TokenTextDecoder, type Tokenizer } from '../model/tokenizer';

/** The content (after indentation) of the nearest non-blank line above the cursor. */
export function previousLinePrediction(text: string, offset: number): string {
  const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
  let end = lineStart - 1;
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const content = text.slice(start, end).replace(/\r$/, '');
    if (content.trim()) return content.trim();
    end = start - 1;
  }
  return '';
}

const MAX_TOKENS = 48;

/**
 * A token n-gram model stored compactly: for each context (up to order−1 previous tokens, packed
 * into one number) only its most frequent next token. Counting sorts packed (context, next) keys
 * instead of building nested maps, so tens of millions of tokens fit in memory.
 */
export class NgramModel {
  private readonly best: Map<number, number>[]; // best[k]: context of k tokens -> next token

  private constructor(
    readonly order: number,
    private readonly vocab: number,
    best: Map<number, number>[],
  ) {
    this.best = best;
  }

  static train(sequences: Iterable<readonly number[]>, vocab: number, order = 3): NgramModel {
    if (order < 1 || vocab ** order > Number.MAX_SAFE_INTEGER) throw new RangeError(`order ${order} is too large for a vocabulary of ${vocab}`);
    const seqs = [...sequences];
    const best: Map<number, number>[] = [];
    for (let k = 0; k < order; k++) {
      const total = seqs.reduce((a, s) => a + Math.max(0, s.length - k), 0);
      const keys = new Float64Array(total); // (context · V + next), exact below 2^53
      let n = 0;
      for (const s of seqs) {
        for (let i = k; i < s.length; i++) {
          let ctx = 0;
          for (let j = i - k; j < i; j++) ctx = ctx * vocab + s[j]!;
          keys[n++] = ctx * vocab + s[i]!;
        }
      }
      keys.sort();
      const table = new Map<number, [number, number]>(); // context -> [next, count]
      for (let i = 0; i < n; ) {
        let j = i;
        while (j < n && keys[j] === keys[i]) j++;
        const key = keys[i]!;
        const next = key % vocab;
        const ctx = (key - next) / vocab;
        const held = table.get(ctx);
        if (!held || j - i > held[1]) table.set(ctx, [next, j - i]);
        i = j;
      }
      best.push(new Map([...table].map(([ctx, [next]]) => [ctx, next])));
    }
    return new NgramModel(order, vocab, best);
  }

  /** The most likely next token after `context`, backing off to shorter contexts. */
  next(context: readonly number[]): number | undefined {
    for (let k = Math.min(this.order - 1, context.length); k >= 0; k--) {
      let ctx = 0;
      for (let j = context.length - k; j < context.length; j++) ctx = ctx * this.vocab + context[j]!;
      const hit = this.best[k]!.get(ctx);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** Greedy continuation of the text before the cursor up to the end of the line. */
  completeLine(tokenizer: Tokenizer, before: string, stopIds: ReadonlySet<number>): string {
    const context = tokenizer.encode(before.slice(-256));
    const decoder = new TokenTextDecoder(tokenizer);
    let text = '';
    for (let i = 0; i < MAX_TOKENS; i++) {
      const t = this.next(context);
      if (t === undefined || stopIds.has(t)) break;
      context.push(t);
      text += decoder.push(t);
      const nl = text.indexOf('\n');
      if (nl >= 0) return text.slice(0, nl);
    }
    return text + decoder.flush();
  }
}
