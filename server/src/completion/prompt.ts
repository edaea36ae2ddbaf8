// The FIM prompt around the cursor: token windows chosen so that consecutive keystrokes share a long
// token prefix (DESIGN.md, "The keystroke path", steps 3 and 4).
import { buildFimPrompt, type FimOrder, type FimTemplate, withContextBlock } from '../model/fim';

/** What prompt building needs from a tokenizer (model/tokenizer.ts's Tokenizer fits). */
export interface PromptTokenizer {
  encode(text: string): number[];
}

/** Window sizes and FIM order; `charsPerToken` only sizes windows before they are tokenized. */
export interface PromptOptions {
  maxPrefixTokens: number;
  maxSuffixTokens: number;
  order: FimOrder;
  /** Expected characters per token, used to pick how much text to tokenize (default: the cache's calibration). */
  charsPerToken?: number;
}

/** Defaults: 1024 prefix tokens (about 4 KB of code), 256 suffix tokens, suffix first so typing only appends. */
export const DEFAULT_PROMPT_OPTIONS: Readonly<PromptOptions> = Object.freeze({ maxPrefixTokens: 1024, maxSuffixTokens: 256, order: 'spm' });

/** A prompt and the windows it was made from; `prefix` is text[prefixStart, cursor), `suffix` text[cursor, suffixEnd). */
export interface BuiltPrompt {
  tokens: number[];
  /** The context block's tokens at the front (empty without one). */
  contextTokens: readonly number[];
  prefixTokens: number[];
  suffixTokens: number[];
  /** Char offset where the prefix window starts. */
  prefixStart: number;
  /** Char offset where the suffix window ends (exclusive). */
  suffixEnd: number;
  prefix: string;
  suffix: string;
}

/** Token ids of text pieces keyed by the piece's text (least recently used evicted); one per tokenizer. */
export class PromptTokenCache {
  private readonly entries = new Map<string, readonly number[]>();

  /** Characters per token of this tokenizer on a fixed code sample: sizes windows before tokenizing. */
  readonly charsPerToken: number;

  constructor(
    readonly tokenizer: PromptTokenizer,
    private readonly maxEntries = 256,
  ) {
    this.charsPerToken = CALIBRATION_SAMPLE.length / Math.max(1, tokenizer.encode(CALIBRATION_SAMPLE).length);
  }

  /** The ids of `text`, from the cache when this exact text was tokenized before. */
  encode(text: string): readonly number[] {
    const hit = this.entries.get(text);
    if (hit !== undefined) {
      this.entries.delete(text);
      this.entries.set(text, hit);
      return hit;
    }
    const ids = this.tokenizer.encode(text);
    this.entries.set(text, ids);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return ids;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Mixed TypeScript and Python, for measuring a tokenizer's density on code once. */
const CALIBRATION_SAMPLE = `import { join } from 'node:path';

export function loadItems(root: string, limit = 10): Item[] {
  const items: Item[] = [];
  for (const name of readdirSync(root)) {
    if (items.length >= limit) break; // enough
    items.push({ path: join(root, name), size: statSync(join(root, name)).size });
  }
  return items.sort((a, b) => b.size - a.size);
}

def load_items(root, limit=10):
    """Largest files first."""
    items = [os.path.join(root, name) for name in os.listdir(root)][:limit]
    return sorted(items, key=os.path.getsize, reverse=True)
`;

const sharedCaches = new WeakMap<PromptTokenizer, PromptTokenCache>();

/** The process-wide piece cache of this tokenizer. */
export function promptTokenCacheFor(tokenizer: PromptTokenizer): PromptTokenCache {
  const known = sharedCaches.get(tokenizer);
  if (known !== undefined) return known;
  const cache = new PromptTokenCache(tokenizer);
  sharedCaches.set(tokenizer, cache);
  return cache;
}

type Encode = (text: string) => readonly number[];

interface Window {
  start: number;
  end: number;
  tokens: readonly number[];
}

/** A window to choose beside `cursor`: at most `maxTokens`, its text sized first by `charsPerToken`. */
interface WindowRequest {
  text: string;
  cursor: number;
  maxTokens: number;
  charsPerToken: number;
  /** Tokenizes through the piece cache (or not, when prompts are built without it). */
  cached: Encode;
}

/** The prefix window also tokenizes the cursor line's unfinished piece, never cached. */
interface PrefixRequest extends WindowRequest {
  raw: Encode;
}

/** One prompt to build: the text, the cursor and what to build it with. */
export interface PromptRequest {
  tokenizer: PromptTokenizer;
  template: FimTemplate;
  text: string;
  /** The cursor, in chars. */
  offset: number;
  /** Window sizes and order (default DEFAULT_PROMPT_OPTIONS). */
  options?: PromptOptions;
  /** The piece cache (default: the tokenizer's shared one); null tokenizes without it. */
  cache?: PromptTokenCache | null;
  /** A context block's tokens (context/block.ts), put before the FIM part. */
  context?: readonly number[];
}

/**
 * The FIM prompt for a cursor at char `offset` of `text`. Pass `cache: null` to tokenize without the
 * piece cache; the tokens are the same either way (pieces are fixed by the text, not by the cache).
 */
export function buildPrompt(request: PromptRequest): BuiltPrompt {
  const { tokenizer, template, text, offset, options = DEFAULT_PROMPT_OPTIONS } = request;
  const cache = request.cache === undefined ? promptTokenCacheFor(tokenizer) : request.cache;
  checkOptions(options);
  if (cache !== null && cache.tokenizer !== tokenizer) throw new Error('the prompt token cache belongs to another tokenizer');
  const cursor = Math.min(Math.max(0, Math.floor(offset)), text.length);
  const raw: Encode = (s) => tokenizer.encode(s);
  const cached: Encode = cache === null ? raw : (s) => cache.encode(s);
  const charsPerToken = options.charsPerToken ?? (cache ?? promptTokenCacheFor(tokenizer)).charsPerToken;
  const pre = choosePrefix({ text, cursor, maxTokens: options.maxPrefixTokens, charsPerToken, cached, raw });
  const suf = chooseSuffix({ text, cursor, maxTokens: options.maxSuffixTokens, charsPerToken, cached });
  const prefixTokens = [...pre.tokens];
  const suffixTokens = [...suf.tokens];
  const contextTokens = request.context ?? [];
  return {
    tokens: withContextBlock(template, contextTokens, buildFimPrompt(template, prefixTokens, suffixTokens, options.order)),
    contextTokens,
    prefixTokens,
    suffixTokens,
    prefixStart: pre.start,
    suffixEnd: suf.end,
    prefix: text.slice(pre.start, cursor),
    suffix: text.slice(cursor, suf.end),
  };
}

function checkOptions(o: PromptOptions): void {
  for (const key of ['maxPrefixTokens', 'maxSuffixTokens'] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0) throw new RangeError(`${key} must be a non-negative integer, got ${o[key]}`);
  }
  if (o.charsPerToken !== undefined && !(o.charsPerToken > 0)) throw new RangeError(`charsPerToken must be positive, got ${o.charsPerToken}`);
  if (o.order !== 'psm' && o.order !== 'spm') throw new RangeError(`order must be 'psm' or 'spm', got ${String(o.order)}`);
}

/**
 * The prefix window. Why it is shaped like this: the KV cache is reused up to the longest common
 * token prefix of two prompts, so a window that slid with the cursor (start = cursor − N) would change
 * its first token on every keystroke and nothing could be reused. Instead the window is cut only at
 * split points that depend on the text before them and on fixed multiples of a jump size `step`
 * (a quarter of the window, in chars):
 *
 *   text   ...|.......line.......|....|..........|...........|.....cursor line█
 *              ^p(j)              ^p(j+1)         ^p(j+2)      ^line start
 *
 * p(j) is the first line start at or after j·step (or j·step itself, at a char boundary, when that
 * point sits in a line that began more than `step` chars earlier: one enormous line). The window
 * starts at the first split point at or after cursor − budget, so it moves only when the cursor
 * crosses a jump boundary, by a jump, and always at a line start in ordinary code. The text between
 * split points is tokenized piece by piece and cached by its text, and the cursor line is its own
 * piece; so a keystroke re-tokenizes only the cursor line before the cursor, and typing at the cursor
 * changes only the last token or two. Tokens at piece boundaries can differ from tokenizing the whole
 * window at once; every prompt goes through here, so that is consistent across keystrokes. When the
 * window is still over its token budget, whole pieces are dropped from the front (a further jump).
 */
function choosePrefix({ text, cursor, maxTokens, charsPerToken: cpt, cached, raw }: PrefixRequest): Window {
  if (maxTokens === 0 || cursor === 0) return { start: cursor, end: cursor, tokens: [] };
  const budget = Math.max(1, Math.ceil(maxTokens * cpt));
  const step = Math.max(1, Math.floor(budget / 4));
  const lo = Math.max(0, cursor - budget);
  const points = splitPoints(text, cursor, lo, step);
  const firstInside = points.findIndex((p) => p >= lo);
  const from = points.slice(firstInside < 0 ? points.length - 1 : firstInside);
  const endsAtLineStart = text.charCodeAt(cursor - 1) === NEWLINE;
  const pieces = from.map((p, i) => {
    const end = i + 1 < from.length ? from[i + 1]! : cursor;
    return end < cursor || endsAtLineStart ? cached(text.slice(p, end)) : raw(text.slice(p, end));
  });
  let total = pieces.reduce((n, ids) => n + ids.length, 0);
  let first = 0;
  while (total > maxTokens && first < pieces.length - 1) total -= pieces[first++]!.length;
  if (total <= maxTokens) return { start: from[first]!, end: cursor, tokens: pieces.slice(first).flat() };
  return cutInsidePiece({ text, from: from[first]!, cursor, maxTokens, step, ids: pieces[first]!, raw });
}

const NEWLINE = 0x0a;

/** Split points below the cursor for jumps j ≥ one or two below lo/step, plus the cursor line's start. */
function splitPoints(text: string, cursor: number, lo: number, step: number): number[] {
  const jFirst = Math.max(0, Math.floor(lo / step) - 2);
  const points = new Set<number>();
  for (let j = jFirst; j * step < cursor; j++) {
    const x = j * step;
    if (x >= step && !hasNewline(text, x - step, x)) {
      points.add(charStart(text, x));
      continue;
    }
    const lineStart = lineStartAtOrAfter(text, x, cursor);
    if (lineStart >= 0) points.add(lineStart);
  }
  const cursorLine = lineStartBefore(text, cursor, jFirst * step);
  if (cursorLine >= 0 && cursorLine < cursor) points.add(cursorLine);
  return [...points].filter((p) => p < cursor).sort((a, b) => a - b);
}

/** True when text[from, to) contains a newline. */
function hasNewline(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === NEWLINE) return true;
  return false;
}

/** The first line start in [x, limit), or −1; scans at most limit − x chars. */
function lineStartAtOrAfter(text: string, x: number, limit: number): number {
  if (x === 0) return 0;
  for (let i = x - 1; i < limit - 1; i++) if (text.charCodeAt(i) === NEWLINE) return i + 1;
  return -1;
}

/** The start of the line holding the cursor when it is at or after `bound`, else −1; scans back to `bound` only. */
function lineStartBefore(text: string, cursor: number, bound: number): number {
  for (let i = cursor - 1; i >= bound; i--) if (text.charCodeAt(i) === NEWLINE) return i + 1;
  return bound === 0 ? 0 : -1;
}

/** A piece text[from, cursor) of `ids` that alone is over `maxTokens`; `step` is the window's jump. */
interface PieceCut {
  text: string;
  from: number;
  cursor: number;
  maxTokens: number;
  step: number;
  ids: readonly number[];
  raw: Encode;
}

/**
 * The last resort for a piece that alone is over budget (a dense stretch of one line: minified code,
 * binary-looking text): start later inside it, at multiples of step/8 so that the start still moves
 * in jumps, re-tokenizing at most a few times (each try starts where the measured density says).
 */
function cutInsidePiece({ text, from, cursor, maxTokens, step, ids, raw }: PieceCut): Window {
  const quantum = Math.max(1, Math.floor(step / 8));
  let start = from;
  let tokens = ids;
  while (tokens.length > maxTokens) {
    const keepChars = Math.floor(((cursor - start) * maxTokens) / tokens.length);
    const next = Math.max(Math.ceil((cursor - keepChars) / quantum) * quantum, (Math.floor(start / quantum) + 1) * quantum);
    if (next >= cursor) return { start: cursor, end: cursor, tokens: [] };
    start = charStart(text, next);
    tokens = raw(text.slice(start, cursor));
  }
  return { start, end: cursor, tokens };
}

/**
 * The suffix window: text after the cursor up to a line end, at most maxTokens tokens. It is sized from
 * the chars-per-token estimate, then shrunk by whole lines (chars only when one line is too long) until
 * it fits; it depends only on the text after the cursor, so typing before it leaves it unchanged.
 */
function chooseSuffix({ text, cursor, maxTokens, charsPerToken: cpt, cached }: WindowRequest): Window {
  if (maxTokens === 0 || cursor >= text.length) return { start: cursor, end: cursor, tokens: [] };
  let limit = Math.min(text.length, cursor + Math.max(1, Math.ceil(maxTokens * cpt)));
  for (;;) {
    const end = suffixCut(text, cursor, limit);
    const tokens = cached(text.slice(cursor, end));
    if (tokens.length <= maxTokens) return { start: cursor, end, tokens };
    const shrunk = cursor + Math.floor((((end - cursor) * maxTokens) / tokens.length) * 0.9);
    limit = Math.min(shrunk, end - 1);
  }
}

/** Where a suffix limited to text[cursor, limit) ends: the text's end, the last line end, or a char boundary. */
function suffixCut(text: string, cursor: number, limit: number): number {
  if (limit >= text.length) return text.length;
  const lastNewline = text.slice(cursor, limit).lastIndexOf('\n');
  if (lastNewline >= 0) return cursor + lastNewline + 1;
  return Math.max(cursor, charEnd(text, limit));
}

/** Moves a start offset forward off the second half of a surrogate pair. */
function charStart(text: string, i: number): number {
  return splitsPair(text, i) ? i + 1 : i;
}

/** Moves an end offset back off the second half of a surrogate pair. */
function charEnd(text: string, i: number): number {
  return splitsPair(text, i) ? i - 1 : i;
}

function splitsPair(text: string, i: number): boolean {
  if (i <= 0 || i >= text.length) return false;
  const hi = text.charCodeAt(i - 1);
  const lo = text.charCodeAt(i);
  return hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff;
}
