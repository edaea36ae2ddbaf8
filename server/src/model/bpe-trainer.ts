// Byte-level BPE training for Kiln's own tokenizers, emitting a Hugging Face tokenizer.json that
// model/tokenizer.ts loads back (no maintained JS library trains BPE).
//
//   texts ──WordCounter (Qwen2 split)──▶ word counts ──learnMerges──▶ merges ──▶ tokenizer.json
//
// Ids: 0..255 are the bytes (spelled with GPT-2's BYTE_TO_UNICODE), then one id per new merged
// token in merge order, then the special tokens. The next merge is the most frequent adjacent pair
// over all words; ties go to the pair whose left spelling, then right spelling, sorts first (UTF-16
// order of the byte-level strings), so the result depends on the word counts alone: the same input
// gives the same tokenizer.json, byte for byte.
import type { BpeVocabulary } from './bpe/hf-files';
import { PAIR_KEY_BASE, PairHeap, pairKey, pairLeft, pairRight, type PairEntry } from './bpe/pair-heap';
import { BYTE_TO_UNICODE } from './tokenizer';

/** Qwen2.5-Coder's names, in Qwen's id order, so Kiln's 'qwen' FIM template serves Kiln's models too. */
export const KILN_SPECIAL_TOKENS = ['<|endoftext|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|repo_name|>', '<|file_sep|>'] as const;

/** The largest vocabulary the trainer builds (pair keys must stay small integers). */
export const MAX_VOCAB = PAIR_KEY_BASE;

export interface LearnedMerges {
  /** id → byte-level spelling, specials excluded: 256 bytes, then the merged tokens. */
  tokens: string[];
  /** Merges in rank order. */
  merges: [string, string][];
  /** For each merge, whether it added a token (two merges can spell the same string). */
  addsToken: boolean[];
}

export interface LearnOptions {
  /** Tokens wanted, bytes included and specials excluded. */
  tokens: number;
  /** Stop early when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Called every 1,000 merges with the merges made so far. */
  onProgress?: (merges: number) => void;
}

/** Words as byte-id sequences packed into one buffer; a merge shortens a word in place. */
interface Words {
  symbols: Int32Array;
  start: Int32Array;
  length: Int32Array;
  freq: Float64Array;
}

const utf8 = new TextEncoder();

function packWords(counts: ReadonlyMap<string, number>): Words {
  const encoded = [...counts.keys()].map((w) => utf8.encode(w));
  const total = encoded.reduce((n, b) => n + b.length, 0);
  const words: Words = { symbols: new Int32Array(total), start: new Int32Array(encoded.length), length: new Int32Array(encoded.length), freq: new Float64Array(encoded.length) };
  let at = 0;
  let w = 0;
  for (const count of counts.values()) {
    const bytes = encoded[w]!;
    words.symbols.set(bytes, at);
    words.start[w] = at;
    words.length[w] = bytes.length;
    words.freq[w] = count;
    at += bytes.length;
    w++;
  }
  return words;
}

/** Learns merges greedily until `tokens` tokens exist or no pair is frequent enough. */
export function learnMerges(counts: ReadonlyMap<string, number>, options: LearnOptions): LearnedMerges {
  if (options.tokens > MAX_VOCAB) throw new RangeError(`at most ${MAX_VOCAB} tokens, asked for ${options.tokens}`);
  const minFrequency = options.minFrequency ?? 2;
  const tokens = [...BYTE_TO_UNICODE];
  const ids = new Map(tokens.map((t, id) => [t, id]));
  const result: LearnedMerges = { tokens, merges: [], addsToken: [] };
  const { symbols, start, length, freq } = packWords(counts);

  const pairCounts = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair → words that held it (repeats and stale entries allowed)
  const note = (key: number, w: number) => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < freq.length; w++) {
    for (let i = start[w]!, end = start[w]! + length[w]! - 1; i < end; i++) {
      const key = pairKey(symbols[i]!, symbols[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + freq[w]!);
      note(key, w);
    }
  }
  const before = (x: PairEntry, y: PairEntry) => {
    if (x.count !== y.count) return x.count > y.count;
    const [xl, yl] = [tokens[pairLeft(x.key)]!, tokens[pairLeft(y.key)]!];
    if (xl !== yl) return xl < yl;
    return tokens[pairRight(x.key)]! < tokens[pairRight(y.key)]!;
  };
  const heap = new PairHeap(before);
  for (const [key, count] of pairCounts) heap.push({ key, count });

  const visited = new Int32Array(freq.length).fill(-1);
  while (tokens.length < options.tokens) {
    const top = heap.pop();
    if (top === undefined || top.count < minFrequency) break;
    if (pairCounts.get(top.key) !== top.count) continue; // stale: a fresher entry is in the heap
    const [a, b] = [pairLeft(top.key), pairRight(top.key)];
    const spelled = tokens[a]! + tokens[b]!;
    let c = ids.get(spelled);
    result.merges.push([tokens[a]!, tokens[b]!]);
    result.addsToken.push(c === undefined);
    if (c === undefined) {
      c = tokens.push(spelled) - 1;
      ids.set(spelled, c);
    }
    const delta = new Map<number, number>();
    const change = (left: number, right: number, by: number, w: number) => {
      const key = pairKey(left, right);
      delta.set(key, (delta.get(key) ?? 0) + by);
      if (by > 0) note(key, w);
    };
    const mergeIndex = result.merges.length;
    for (const w of where.get(top.key) ?? []) {
      if (visited[w] === mergeIndex) continue;
      visited[w] = mergeIndex;
      const f = freq[w]!;
      const s = start[w]!;
      const end = s + length[w]!;
      let write = s;
      for (let read = s; read < end; ) {
        if (read + 1 < end && symbols[read] === a && symbols[read + 1] === b) {
          // The previous symbol is already in its merged form; the next one is not yet rewritten.
          if (write > s) {
            change(symbols[write - 1]!, a, -f, w);
            change(symbols[write - 1]!, c, f, w);
          }
          if (read + 2 < end) {
            change(b, symbols[read + 2]!, -f, w);
            change(c, symbols[read + 2]!, f, w);
          }
          symbols[write++] = c;
          read += 2;
        } else {
          symbols[write++] = symbols[read++]!;
        }
      }
      length[w] = write - s;
    }
    pairCounts.delete(top.key);
    where.delete(top.key);
    for (const [key, by] of delta) {
      if (by === 0 || key === top.key) continue;
      const count = (pairCounts.get(key) ?? 0) + by;
      if (count > 0) {
        pairCounts.set(key, count);
        heap.push({ key, count });
      } else {
        pairCounts.delete(key);
        where.delete(key); // a later merge that spells an existing token notes its words again
      }
    }
    if (mergeIndex % 1000 === 0) options.onProgress?.(mergeIndex);
  }
  return result;
}

/** The first merges that make exactly `tokens` tokens (a greedy run to N contains every run to M < N). */
export function truncateMerges(learned: LearnedMerges, tokens: number): LearnedMerges {
  if (tokens < 256 || tokens > learned.tokens.length) throw new RangeError(`cannot cut ${learned.tokens.length} tokens to ${tokens}`);
  let made = 256;
  let n = 0;
  while (made < tokens && n < learned.merges.length) if (learned.addsToken[n++]) made++;
  return { tokens: learned.tokens.slice(0, tokens), merges: learned.merges.slice(0, n), addsToken: learned.addsToken.slice(0, n) };
}

/** The tokenizer files' view of learned merges: the model's tokens, then the special tokens. */
export function vocabularyOf(learned: LearnedMerges, specialTokens: readonly string[] = KILN_SPECIAL_TOKENS): BpeVocabulary {
  return { tokens: learned.tokens, merges: learned.merges, specialTokens };
}

/** Trains a vocabulary of `vocabSize` ids in all (bytes, merged tokens and the special tokens). */
export function trainBpe(counts: ReadonlyMap<string, number>, vocabSize: number, options: Omit<LearnOptions, 'tokens'> = {}): BpeVocabulary {
  const tokens = vocabSize - KILN_SPECIAL_TOKENS.length;
  if (!Number.isInteger(tokens) || tokens < 256) throw new RangeError(`vocabulary size must be at least ${256 + KILN_SPECIAL_TOKENS.length}, got ${vocabSize}`);
  return vocabularyOf(learnMerges(counts, { ...options, tokens }));
}
