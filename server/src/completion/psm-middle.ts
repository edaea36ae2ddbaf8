// PSM prompts that typing only appends to. In PSM order, `<pre> P <suf> S <mid>`, the suffix's KV
// depends on every prefix token before it, so a keystroke at the end of P re-prefills all of S.
// What the format allows instead: P may end anywhere before the cursor, and the text between that
// point and the cursor is the start of the middle the model fills in. So the prompt is
//
//   <pre> text[start, anchor) <suf> text[cursor, end) <mid> text[anchor, cursor)
//                                                           └ the lines typed since the anchor
//
// with the anchor at a line start at or before the cursor line. Typing leaves P and S unchanged and
// only appends to the middle, as in SPM. The anchor moves in jumps, like the prefix window's start:
// it is the first line start at or after the last multiple of MIDDLE_JUMP_CHARS before the cursor
// line, so Enter usually appends too, and S is prefilled again only when the cursor line crosses a
// jump (every few lines typed), not on every keystroke. FIM training cuts the middle at arbitrary characters, so a middle that begins with part
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
export const MIDDLE_RESERVE_TOKENS = 128;
/** The anchor's jump: about a third of the reserve in code, leaving room for the cursor line. */
export const MIDDLE_JUMP_CHARS = 192;
// The suffix budget, measured (tests/bench/prewarm.bench.ts and prompt-quality.bench.ts; README,
// Performance): plain PSM's first-token p95 on the reference model's trace was 2,652 / 1,068 / 584 /
// 279 ms at 256 / 128 / 64 / 32 suffix tokens, while on held-out code 64 and 32 scored as the default
// (edit similarity −0.002 [−0.016, +0.012], +0.000 [−0.013, +0.014]); with the typed middle the
// suffix is nearly free (p95 223 ms at 256), so `kiln.maxSuffixTokens` keeps its 256. With
// `kiln.psmTypedMiddle` off, 64 is the measured budget to set.
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
  /** The context block's tokens, placed before the FIM prompt (see context/block.ts). */
  context?: readonly number[];
  /** Take the last middle token back (token healing, see token-healing.ts). */
  heal: boolean;
}

/** The prompt with the cursor line's typed text in the middle, and the built windows around it. */
export interface TypedMiddlePrompt extends HealedPrompt {
  built: BuiltPrompt;
  /** text[anchor, cursor): the typed start of the middle ('' when the prompt is plain PSM). */
  middle: string;
}

/** The PSM prompt at `offset` with the text typed since the anchor moved into the middle. */
export function buildTypedMiddlePrompt(request: TypedMiddleRequest): TypedMiddlePrompt {
  const { tokenizer, template, text, options, heal } = request;
  if (options.order !== 'psm') throw new RangeError(`a typed middle needs PSM order, got ${options.order}`);
  const cursor = Math.min(Math.max(0, Math.floor(request.offset)), text.length);
  const reserved = { ...options, maxPrefixTokens: Math.max(0, options.maxPrefixTokens - MIDDLE_RESERVE_TOKENS) };
  const lineStart = text.lastIndexOf('\n', cursor - 1) + 1;
  let anchor = jumpAnchor(text, lineStart);
  let middle = middleTokens(tokenizer, text.slice(anchor, cursor));
  if (middle === undefined && anchor < lineStart) {
    anchor = lineStart; // long lines since the anchor: the middle is the cursor line only
    middle = middleTokens(tokenizer, text.slice(anchor, cursor));
  }
  const middleText = text.slice(anchor, cursor);
  if (middle === undefined) {
    // plain PSM for an overlong cursor line, its window as short as the typed-middle one's
    const built = buildPrompt({ tokenizer, template, text, offset: cursor, options: reserved, cache: request.cache, context: request.context ?? [] });
    return { ...(heal ? healPrompt(built, template, 'psm', tokenizer) : plain(built.tokens)), built, middle: '' };
  }
  // the prompt of the text without the typed part, its cursor at the anchor: P and S as they stay
  const around = buildPrompt({
    tokenizer,
    template,
    text: text.slice(0, anchor) + text.slice(cursor),
    offset: anchor,
    options: reserved,
    cache: request.cache,
    context: request.context ?? [],
  });
  // no middle (nothing typed since the anchor): nothing to heal, P ends at a line break as training cuts do
  if (!heal || middle.length === 0) return { ...plain([...around.tokens, ...middle]), built: around, middle: middleText };
  const healed = healTail(middle, tokenizer);
  return { tokens: [...around.tokens, ...middle.slice(0, healed.keep)], forcedText: healed.forcedText, forcedBytes: healed.forcedBytes, built: around, middle: middleText };
}

/** The first line start at or after the last multiple of MIDDLE_JUMP_CHARS at or before `lineStart` (a line start itself). */
function jumpAnchor(text: string, lineStart: number): number {
  const jump = Math.floor(lineStart / MIDDLE_JUMP_CHARS) * MIDDLE_JUMP_CHARS;
  if (jump === 0 || text.charCodeAt(jump - 1) === 0x0a) return jump;
  const next = text.indexOf('\n', jump);
  return next < 0 || next + 1 > lineStart ? lineStart : next + 1;
}

/** The middle's tokens, or undefined when it is too long to be one (then a later anchor, or plain PSM). */
function middleTokens(tokenizer: Tokenizer, middle: string): number[] | undefined {
  if (middle.length > MAX_MIDDLE_CHARS) return undefined;
  const ids = tokenizer.encode(middle);
  return ids.length <= MIDDLE_RESERVE_TOKENS ? ids : undefined;
}

function plain(tokens: number[]): HealedPrompt {
  return { tokens, forcedText: '', forcedBytes: new Uint8Array(0) };
}
