// The pre-tokenizer Kiln's own tokenizers declare, and the word counts BPE training starts from.
// Training splits text with the very pre-tokenizer class that loads the emitted tokenizer.json, so
// the words merges are learned on are exactly the words encode() later sees.
import { SplitPreTokenizer } from '@huggingface/tokenizers';

/**
 * Qwen2's split (as in Qwen2.5-Coder's tokenizer.json): contractions, letters with at most one
 * leading non-letter (`.map`, `_id`, ` value`), single digits, punctuation runs with their line
 * breaks, newline runs with the indentation before them, and other whitespace. Numbers split into
 * single digits, as Qwen and LLaMA 3 do: the vocabulary spends no entries on numbers, every number
 * tokenizes the same way wherever it stands, and numeric literals cost one token per digit.
 */
export const QWEN2_SPLIT_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false } as const;

/** The `pre_tokenizer` of an emitted tokenizer.json: the split, then bytes spelled as GPT-2 characters. */
export const PRE_TOKENIZER_CONFIG = {
  type: 'Sequence',
  pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false }, BYTE_LEVEL],
} as const;

/** The `decoder` (and `post_processor`) of an emitted tokenizer.json. */
export const BYTE_LEVEL_CONFIG = BYTE_LEVEL;

/** Counts pre-tokens (words) over texts fed one at a time; a word never spans two texts. */
export class WordCounter {
  readonly counts = new Map<string, number>();
  private readonly split = new SplitPreTokenizer(PRE_TOKENIZER_CONFIG.pretokenizers[0]);
  /** Characters (UTF-16 units) counted so far. */
  chars = 0;

  add(text: string): void {
    this.chars += text.length;
    for (const word of this.split.pre_tokenize_text(text)) this.counts.set(word, (this.counts.get(word) ?? 0) + 1);
  }
}
