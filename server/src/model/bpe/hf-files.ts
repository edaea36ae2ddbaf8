// A trained byte-level BPE in Hugging Face layout: tokenizer.json (read by model/tokenizer.ts, the
// `tokenizers` library and llama.cpp's converter) and tokenizer_config.json (for transformers).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BYTE_LEVEL_CONFIG, PRE_TOKENIZER_CONFIG } from './pretokenize';

export interface BpeVocabulary {
  /** id → byte-level spelling for the model's tokens (no specials). */
  tokens: readonly string[];
  /** Merges in rank order. */
  merges: readonly (readonly [string, string])[];
  /** Special tokens, given the ids after the model's tokens in this order. */
  specialTokens: readonly string[];
}

interface AddedToken {
  id: number;
  content: string;
  single_word: false;
  lstrip: false;
  rstrip: false;
  normalized: false;
  special: true;
}

/** Special tokens as tokenizer.json's added_tokens, with ids from `firstId` on. */
export function specialAddedTokens(specialTokens: readonly string[], firstId: number): AddedToken[] {
  return specialTokens.map((content, i) => ({
    id: firstId + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

/**
 * tokenizer.json. No normalizer (code must round-trip byte for byte, so no NFC); merges as "a b"
 * strings, which every reader accepts (byte-level spellings never hold a space).
 */
export function tokenizerJson(v: BpeVocabulary): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialAddedTokens(v.specialTokens, v.tokens.length),
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZER_CONFIG,
    post_processor: BYTE_LEVEL_CONFIG,
    decoder: BYTE_LEVEL_CONFIG,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(v.tokens.map((t, id) => [t, id])),
      merges: v.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** tokenizer_config.json: no BOS, <|endoftext|> ends documents and pads. */
export function tokenizerConfigJson(v: BpeVocabulary): Record<string, unknown> {
  const added = specialAddedTokens(v.specialTokens, v.tokens.length);
  const eos = v.specialTokens[0]!;
  return {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: v.specialTokens.slice(1),
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: eos,
    errors: 'replace',
    pad_token: eos,
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
}

/** Writes both files into `dir` (created if needed). */
export function writeTokenizerFiles(dir: string, v: BpeVocabulary): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), `${JSON.stringify(tokenizerJson(v), null, 2)}\n`);
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfigJson(v), null, 2)}\n`);
}
