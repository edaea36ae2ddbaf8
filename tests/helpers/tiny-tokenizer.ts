// Seeded tiny byte-level BPE tokenizers in Hugging Face layout, made at test time (no downloads).
//
// Layout of a tokenizer with `vocabSize` entries:
//   ids 0..255                     the 256 byte symbols; id b is byte b, spelled with the GPT-2
//                                  bytes-to-unicode mapping (so ' ' is 'Ġ', '\n' is 'Ċ')
//   ids 256..vocabSize-8           merges learned greedily from CODE_CORPUS (one new token each);
//                                  past ~580 the corpus is exhausted and random pairs fill the rest
//   ids vocabSize-7..vocabSize-1   the Qwen2.5-Coder special tokens, in TINY_SPECIAL_TOKENS order
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BYTE_TO_UNICODE, GPT2_SPLIT_PATTERN } from '../../server/src/model/tokenizer';
import { seededRandom } from './random';
import { specialAddedTokens } from '../../server/src/model/bpe/hf-files';

/** The special tokens of every tiny tokenizer, occupying the last 7 ids in this order. */
export const TINY_SPECIAL_TOKENS = ['<|endoftext|>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>', '<|file_sep|>', '<|repo_name|>'] as const;

export interface TinyTokenizerOptions {
  /** Total size including the 256 byte symbols and the 7 special tokens (at least 263). */
  vocabSize: number;
  /** Breaks ties between equally frequent pairs, so different seeds give different merges. */
  seed?: number;
}

/** The text merges are learned from: TypeScript- and Python-flavoured code. */
export const CODE_CORPUS = `import { readFileSync } from 'node:fs';
import type { Config } from './config';

export interface Options {
  name: string;
  count: number;
  enabled?: boolean;
}

export function parseOptions(text: string): Options {
  const value = JSON.parse(text) as Record<string, unknown>;
  if (typeof value.name !== 'string') {
    throw new Error('name must be a string');
  }
  return { name: value.name, count: Number(value.count ?? 0), enabled: value.enabled === true };
}

export class Counter {
  private count = 0;
  constructor(private readonly name: string) {}
  increment(step = 1): number {
    this.count += step;
    return this.count;
  }
  toString(): string {
    return \`\${this.name}: \${this.count}\`;
  }
}

for (let index = 0; index < items.length; index++) {
  const item = items[index];
  if (item === undefined) continue;
  console.log(index, item);
}

def parse_options(text):
    value = json.loads(text)
    if not isinstance(value.get("name"), str):
        raise ValueError("name must be a string")
    return {"name": value["name"], "count": int(value.get("count", 0))}


class Counter:
    def __init__(self, name):
        self.name = name
        self.count = 0

    def increment(self, step=1):
        self.count += step
        return self.count

    def __repr__(self):
        return f"{self.name}: {self.count}"


for index, item in enumerate(items):
    if item is None:
        continue
    print(index, item)
`;

/** A valid `tokenizer.json` object for a tiny byte-level BPE (GPT-2 pre-tokenizer and decoder). */
export function makeTinyTokenizerJson(options: TinyTokenizerOptions): object {
  const { vocabSize, seed = 0 } = options;
  const learnedSize = vocabSize - TINY_SPECIAL_TOKENS.length;
  if (!Number.isInteger(vocabSize) || learnedSize < 256) {
    throw new RangeError(`vocabSize must be an integer >= ${256 + TINY_SPECIAL_TOKENS.length}, got ${vocabSize}`);
  }
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[BYTE_TO_UNICODE[b]!] = b;
  const merges = learnMerges(learnedSize - 256, seed, vocab);
  const added_tokens = specialAddedTokens(TINY_SPECIAL_TOKENS, learnedSize);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** The `tokenizer_config.json` that goes with makeTinyTokenizerJson (Qwen2-style). */
export function makeTinyTokenizerConfigJson(options: TinyTokenizerOptions): object {
  const learnedSize = options.vocabSize - TINY_SPECIAL_TOKENS.length;
  const added_tokens_decoder: Record<string, object> = {};
  TINY_SPECIAL_TOKENS.forEach((content, i) => {
    added_tokens_decoder[String(learnedSize + i)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder,
    additional_special_tokens: TINY_SPECIAL_TOKENS.slice(1),
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: '<|endoftext|>',
    errors: 'replace',
    model_max_length: 512,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

/** Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if missing). */
export function writeTinyTokenizer(dir: string, options: TinyTokenizerOptions): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(makeTinyTokenizerJson(options), null, 2));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(makeTinyTokenizerConfigJson(options), null, 2));
}

/**
 * Greedy BPE training: repeatedly merge the most frequent adjacent pair across the corpus words
 * until `count` new tokens exist. Adds the new tokens to `vocab`; returns merges as "a b" strings.
 */
function learnMerges(count: number, seed: number, vocab: Record<string, number>): string[] {
  const encoder = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const piece of CODE_CORPUS.match(GPT2_SPLIT_PATTERN) ?? []) {
    const symbols = Array.from(encoder.encode(piece), (b) => BYTE_TO_UNICODE[b]!).join('\u0000');
    wordCounts.set(symbols, (wordCounts.get(symbols) ?? 0) + 1);
  }
  // Each word as its current symbol list, with how often it occurs.
  const words = [...wordCounts].map(([w, n]) => ({ symbols: w.split('\u0000'), n }));
  const rand = seededRandom(seed);
  const tieBreak = new Map<string, number>();
  const merges: string[] = [];
  let nextId = 256;
  while (nextId < 256 + count) {
    const pairCounts = new Map<string, number>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + n);
      }
    }
    let best: string | undefined;
    let bestScore = -1;
    for (const [key, n] of pairCounts) {
      if (!tieBreak.has(key)) tieBreak.set(key, rand());
      const score = n + tieBreak.get(key)! * 0.5; // the fraction only orders equal counts
      if (score > bestScore) [best, bestScore] = [key, score];
    }
    if (best === undefined) {
      // The corpus is fully merged: pad with merges of random existing tokens (valid, just rarely used).
      nextId = padWithRandomMerges(vocab, merges, nextId, 256 + count, rand);
      break;
    }
    const [left, right] = best.split(' ') as [string, string];
    const merged = left + right;
    merges.push(best);
    if (!(merged in vocab)) vocab[merged] = nextId++;
    for (const word of words) word.symbols = applyMerge(word.symbols, left, right);
  }
  return merges;
}

function padWithRandomMerges(vocab: Record<string, number>, merges: string[], nextId: number, endId: number, rand: () => number): number {
  const tokens = Object.keys(vocab);
  while (nextId < endId) {
    const left = tokens[Math.floor(rand() * tokens.length)]!;
    const right = tokens[Math.floor(rand() * tokens.length)]!;
    const merged = left + right;
    if (merged in vocab || merged.length > 12) continue;
    merges.push(`${left} ${right}`);
    vocab[merged] = nextId++;
    tokens.push(merged);
  }
  return nextId;
}

function applyMerge(symbols: string[], left: string, right: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (i + 1 < symbols.length && symbols[i] === left && symbols[i + 1] === right) {
      out.push(left + right);
      i++;
    } else {
      out.push(symbols[i]!);
    }
  }
  return out;
}
