// Drafting by lookup (prompt-lookup / n-gram drafting): code repeats itself, so the tokens that
// followed the last occurrence of the context's final n tokens — in the prompt itself, or in other
// documents' tokens — are a cheap guess at what comes next. The guess is only a draft: generation.ts
// verifies it against the model's own greedy choices, so a wrong draft costs time, never output.
import type { Tokenizer } from '../model/tokenizer';

export interface LookupDraftOptions {
  /** Longest suffix of the context matched (tried first), and the shortest. */
  maxNgram: number;
  minNgram: number;
  /** Most tokens drafted at once. */
  maxDraft: number;
  /** Token sequences besides the context to find matches in (other documents' prompts). */
  sources?: readonly (readonly number[])[];
  /** A draft ends after the first token for which this is true (a line break, when one line is asked). */
  endsDraft?: (id: number) => boolean;
}

// Longest match first, from 4 tokens down to 2, and drafts of 3: on the embedded model over the
// keystroke trace (tests/bench/keystroke.bench.ts --lookup) 1-token matches were accepted 9% of
// the time and cost more than they saved, and longer drafts were accepted less often
export const DEFAULT_LOOKUP_DRAFT: LookupDraftOptions = { maxNgram: 4, minNgram: 2, maxDraft: 3 };

/**
 * The tokens that followed the most recent earlier occurrence of the context's last n tokens, for
 * the largest n in maxNgram..minNgram that occurs; the context is searched before the sources.
 * Empty when nothing matches.
 */
export function draftByLookup(context: readonly number[], options: LookupDraftOptions): number[] {
  const end = context.length;
  for (let n = Math.min(options.maxNgram, end - 1); n >= options.minNgram; n--) {
    const inContext = followingMatch(context, context, end - n, n, end - n - 1, options.maxDraft);
    if (inContext) return cut(inContext, options.endsDraft);
    for (const source of options.sources ?? []) {
      const found = followingMatch(source, context, end - n, n, source.length - n - 1, options.maxDraft);
      if (found) return cut(found, options.endsDraft);
    }
  }
  return [];
}

function cut(draft: number[], endsDraft: LookupDraftOptions['endsDraft']): number[] {
  const end = endsDraft ? draft.findIndex(endsDraft) : -1;
  return end < 0 ? draft : draft.slice(0, end + 1);
}

/**
 * Scans `haystack` backwards from `last` for the n tokens of `needle` starting at `from`; returns
 * up to `max` tokens after the match (at least one), or undefined.
 */
function followingMatch(haystack: readonly number[], needle: readonly number[], from: number, n: number, last: number, max: number): number[] | undefined {
  const first = needle[from]!;
  for (let i = Math.min(last, haystack.length - n - 1); i >= 0; i--) {
    if (haystack[i] !== first) continue;
    let j = 1;
    while (j < n && haystack[i + j] === needle[from + j]) j++;
    if (j === n) return haystack.slice(i + n, Math.min(i + n + max, haystack.length)) as number[];
  }
  return undefined;
}

const lineBreakCache = new WeakMap<Tokenizer, (id: number) => boolean>();

/** Whether a token's bytes hold a line break, computed once per tokenizer. */
export function lineBreakTokens(tokenizer: Tokenizer): (id: number) => boolean {
  let test = lineBreakCache.get(tokenizer);
  if (!test) {
    const breaks = new Set<number>();
    for (let id = 0; id < tokenizer.vocabSize; id++) if (tokenizer.tokenBytes(id).includes(0x0a)) breaks.add(id);
    test = (id) => breaks.has(id);
    lineBreakCache.set(tokenizer, test);
  }
  return test;
}
