// Token healing. The prompt ends where the cursor is, so its last token is often a piece the model
// rarely saw as a whole: indentation before a word ("\n    " + "return" is trained as "\n   " +
// " return"), half an identifier. The last prefix token is taken back out of the prompt and the
// generation is constrained to begin with its bytes, so the model picks the token it knows.
import { buildFimPrompt, type FimOrder, type FimTemplate, withContextBlock } from '../model/fim';
import type { Tokenizer } from '../model/tokenizer';
import type { BuiltPrompt } from './prompt';

export interface HealedPrompt {
  tokens: number[];
  /** The text the generation must start with (and which is then removed from the answer). */
  forcedText: string;
  forcedBytes: Uint8Array;
}

const isBlank = (bytes: Uint8Array) => bytes.length > 0 && bytes.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d);

/**
 * The prompt without its last prefix token — and, when that token is whitespace, without the
 * whitespace token before it too (the line break before indentation), since training text merges
 * the two differently than a prefix cut at the cursor does. Unchanged when the prefix is empty.
 */
export function healPrompt(prompt: BuiltPrompt, template: FimTemplate, order: FimOrder, tokenizer: Tokenizer): HealedPrompt {
  const prefix = prompt.prefixTokens;
  const healed = healTail(prefix, tokenizer);
  if (healed.keep === prefix.length) return { tokens: prompt.tokens, forcedText: '', forcedBytes: new Uint8Array(0) };
  return {
    tokens: withContextBlock(template, prompt.contextTokens, buildFimPrompt(template, prefix.slice(0, healed.keep), prompt.suffixTokens, order)),
    forcedText: healed.forcedText,
    forcedBytes: healed.forcedBytes,
  };
}

/** How many of `tokens` (text ending at the cursor) to keep, and the bytes of those taken back (see healPrompt). */
export function healTail(tokens: readonly number[], tokenizer: Tokenizer): { keep: number; forcedText: string; forcedBytes: Uint8Array } {
  let keep = tokens.length;
  const removable = (id: number | undefined) => id !== undefined && !tokenizer.isControl(id);
  if (removable(tokens[keep - 1])) {
    keep--;
    if (isBlank(tokenizer.tokenBytes(tokens[keep]!)) && removable(tokens[keep - 1]) && isBlank(tokenizer.tokenBytes(tokens[keep - 1]!))) keep--;
  }
  const parts = tokens.slice(keep).map((id) => tokenizer.tokenBytes(id));
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
  return { keep, forcedText: new TextDecoder().decode(bytes), forcedBytes: bytes };
}

/** Each token's bytes, computed once per tokenizer: the mask compares bytes, not decoded text. */
const tokenBytesCache = new WeakMap<Tokenizer, Uint8Array[]>();

/**
 * Computes the table now (a 151,936-token vocabulary takes ~0.3 s) so that the first completion
 * after a model load does not pay for it; model loading calls it in a step of its own.
 */
export function prepareTokenHealing(tokenizer: Tokenizer): void {
  allTokenBytes(tokenizer);
}

function allTokenBytes(tokenizer: Tokenizer): Uint8Array[] {
  let table = tokenBytesCache.get(tokenizer);
  if (!table) {
    table = Array.from({ length: tokenizer.vocabSize }, (_, id) => (tokenizer.isControl(id) ? new Uint8Array(0) : tokenizer.tokenBytes(id)));
    tokenBytesCache.set(tokenizer, table);
  }
  return table;
}

/**
 * Constrains sampling until the forced bytes are produced: a token is allowed when its bytes and
 * the remaining forced bytes agree on their common length (it either covers them or is covered).
 */
export class ForcedPrefix {
  private remaining: Uint8Array;
  private readonly table: Uint8Array[];

  constructor(forced: Uint8Array, tokenizer: Tokenizer) {
    this.remaining = forced;
    this.table = allTokenBytes(tokenizer);
  }

  get active(): boolean {
    return this.remaining.length > 0;
  }

  /** A copy of `logits` [V] with every incompatible token at −∞. */
  mask(logits: Float32Array): Float32Array {
    const out = Float32Array.from(logits);
    const r = this.remaining;
    for (let id = 0; id < out.length; id++) {
      const t = this.table[id];
      let ok = t !== undefined && t.length > 0;
      for (let i = 0; ok && i < Math.min(t!.length, r.length); i++) ok = t![i] === r[i];
      if (!ok) out[id] = -Infinity;
    }
    return out;
  }

  advance(id: number): void {
    const t = this.table[id] ?? new Uint8Array(0);
    this.remaining = this.remaining.subarray(Math.min(t.length, this.remaining.length));
  }
}
