// PSM prompts that typing only appends to. In PSM order, `<pre> P <suf> S <mid>`, the suffix's KV
// depends on every prefix token before it, so a keystroke at the end of P re-prefills all of S.
// What the format allows instead: P may end anywhere before the cursor, and the text between that
// point and the cursor is the start of the middle the model fills in. So the prompt is
//
//   <pre> text[start, anchor) <suf> text[cursor, end) <mid> text[anchor, cursor)
//                                                           └ the cursor line, typed so far
//
// with the anchor at the start of the cursor line. Typing on the line leaves P and S unchanged and
// only appends to the middle, as in SPM; S is prefilled again once per line (on Enter), not per
// keystroke. FIM training cuts the middle at arbitrary characters, so a middle that begins with part
// of a line is a prompt the model was trained on; `kiln eval --psm-middle` measures what it costs.
import type { FimTemplate } from '../model/fim';
import type { Tokenizer } from '../model/tokenizer';
import { type BuiltPrompt, buildPrompt, type PromptOptions, type PromptTokenCache } from './prompt';
import { type HealedPrompt, healPrompt, healTail } from './token-healing';

/**
 * Tokens kept free for the middle: the prefix window is this much shorter (always, so that its start
 * does not move as the line grows), and a cursor line with more tokens before the cursor falls back
 * to a plain PSM prompt.
 */
export const MIDDLE_RESERVE_TOKENS = 96;
/** Longer cursor lines (minified code) are never tokenized as a middle: plain PSM instead. */
const MAX_MIDDLE_CHARS = 1024;

export interface TypedMiddleRequest {
  tokenizer: Tokenizer;
  template: FimTemplate;
  text: string;
  offset: number;
  /** Window sizes; the order must be PSM. */
  options: PromptOptions;
  cache?: PromptTokenCache | null;
  /** Take the last middle token back (token healing, see token-healing.ts). */
  heal: boolean;
}

/** The prompt with the cursor line's typed text in the middle, and the built windows around it. */
export interface TypedMiddlePrompt extends HealedPrompt {
  built: BuiltPrompt;
  /** text[anchor, cursor): the typed start of the middle ('' when the prompt is plain PSM). */
  middle: string;
}

/** The PSM prompt at `offset` with the cursor line's text before the cursor moved into the middle. */
export function buildTypedMiddlePrompt(request: TypedMiddleRequest): TypedMiddlePrompt {
  const { tokenizer, template, text, options, heal } = request;
  if (options.order !== 'psm') throw new RangeError(`a typed middle needs PSM order, got ${options.order}`);
  const cursor = Math.min(Math.max(0, Math.floor(request.offset)), text.length);
  const anchor = text.lastIndexOf('\n', cursor - 1) + 1;
  const reserved = { ...options, maxPrefixTokens: Math.max(0, options.maxPrefixTokens - MIDDLE_RESERVE_TOKENS) };
  const middleText = text.slice(anchor, cursor);
  const middle = middleText.length <= MAX_MIDDLE_CHARS ? tokenizer.encode(middleText) : undefined;
  if (middle === undefined || middle.length > MIDDLE_RESERVE_TOKENS) {
    // plain PSM for an overlong cursor line, its window as short as the typed-middle one's
    const built = buildPrompt({ tokenizer, template, text, offset: cursor, options: reserved, cache: request.cache });
    return { ...(heal ? healPrompt(built, template, 'psm', tokenizer) : plain(built.tokens)), built, middle: '' };
  }
  // the prompt of the text without the typed part, its cursor at the anchor: P and S as they stay
  const around = buildPrompt({ tokenizer, template, text: text.slice(0, anchor) + text.slice(cursor), offset: anchor, options: reserved, cache: request.cache });
  // no middle (the cursor at a line start): nothing to heal, P ends at a line break as training cuts do
  if (!heal || middle.length === 0) return { ...plain([...around.tokens, ...middle]), built: around, middle: middleText };
  const healed = healTail(middle, tokenizer);
  return { tokens: [...around.tokens, ...middle.slice(0, healed.keep)], forcedText: healed.forcedText, forcedBytes: healed.forcedBytes, built: around, middle: middleText };
}

function plain(tokens: number[]): HealedPrompt {
  return { tokens, forcedText: '', forcedBytes: new Uint8Array(0) };
}
