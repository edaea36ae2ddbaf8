// Turns a piece of a document into one training example: with probability `fimRate` a
// fill-in-the-middle example in the model's own template (PSM or SPM), otherwise plain text; both
// end with the end-of-text token, so the model learns to stop after a middle. A FIM middle is either
// a uniform character span (Bavarian et al. 2022) or, with probability `lineSpanRate`, the rest of a
// line (or of a few lines) — what the editor asks for at a cursor — so the model also learns to end
// a middle where a line ends.
import { buildFimPrompt, type FimOrder, type FimTemplate, withContextBlock } from '../model/fim';
import { charBoundary } from './chunk';
import { randomInt } from './random';

/** What the transform needs from a tokenizer (model/tokenizer.ts's Tokenizer fits). */
export interface ExampleTokenizer {
  encode(text: string): number[];
  readonly eosId?: number | undefined;
}

/**
 * Which tokens are trained on. 'all' (the default, as in Bavarian et al. 2022 and StarCoder): every
 * token is a target, prefix and suffix included, FIM markers too. 'middle': in FIM examples only
 * the middle and the end token (what the model generates at a cursor); plain examples stay 'all'.
 */
export type FimLoss = 'all' | 'middle';

export interface FimOptions {
  /** Share of examples made FIM (default 0.9). */
  fimRate: number;
  /** Share of FIM examples in SPM order, the rest PSM (default 0.5). */
  spmRate: number;
  /** Share of FIM examples whose middle is cut at line ends (fimLineSplit), the rest uniform (default 0.5). */
  lineSpanRate: number;
  loss: FimLoss;
}

export type ExampleKind = 'plain' | FimOrder;

export interface Example {
  tokens: number[];
  /** loss[i] = 1 when tokens[i] is a target (predicted from the tokens before it). */
  loss: Uint8Array;
  kind: ExampleKind;
}

export interface ExampleContext {
  tokenizer: ExampleTokenizer;
  /** Without one (a model with no FIM tokens) every example is plain. */
  template: FimTemplate | undefined;
  /** Ends every example: the tokenizer's EOS, else the template's first stop id. */
  endId: number;
  options: FimOptions;
  /**
   * The context block (context/block.ts) for a cursor at char `cursor` of the text — a FIM middle's
   * start, 0 for a plain example — put before the example as the editor puts it before its prompt; never a target.
   */
  contextAt?: (cursor: number) => readonly number[];
}

/** The text cut into prefix, middle and suffix at two uniform character positions. */
export function fimSplit(text: string, random: () => number): [string, string, string] {
  const a = charBoundary(text, randomInt(random, text.length + 1));
  const b = charBoundary(text, randomInt(random, text.length + 1));
  const [lo, hi] = a <= b ? [a, b] : [b, a];
  return [text.slice(0, lo), text.slice(lo, hi), text.slice(hi)];
}

/** Share of line spans that end on their own line; the others take 1–3 more lines. */
const SINGLE_LINE_SPANS = 0.7;
const MAX_EXTRA_LINES = 3;

/** Lines holding more than whitespace: where their content starts (first non-blank) and ends (before \r?\n). */
function contentLines(text: string): { first: number; end: number }[] {
  const lines: { first: number; end: number }[] = [];
  for (let start = 0; start < text.length; ) {
    const newline = text.indexOf('\n', start);
    const next = newline < 0 ? text.length : newline + 1;
    const end = newline < 0 ? text.length : newline > start && text[newline - 1] === '\r' ? newline - 1 : newline;
    const content = text.slice(start, end);
    const first = start + content.length - content.trimStart().length;
    if (first < end) lines.push({ first, end });
    start = next;
  }
  return lines;
}

/**
 * The text cut where an editor's cursor would be: the middle starts on a random non-blank line, at
 * its first non-blank character or (half the time) anywhere in it, and runs to the end of that
 * line's content or of one of the next 1–3 non-blank lines; the line break stays in the suffix.
 * A text with no such line is cut uniformly.
 */
export function fimLineSplit(text: string, random: () => number): [string, string, string] {
  const lines = contentLines(text);
  if (lines.length === 0) return fimSplit(text, random);
  const i = randomInt(random, lines.length);
  const line = lines[i]!;
  const start = random() < 0.5 ? line.first : charBoundary(text, line.first + randomInt(random, line.end - line.first + 1));
  const extra = random() < SINGLE_LINE_SPANS ? 0 : 1 + randomInt(random, MAX_EXTRA_LINES);
  const end = lines[Math.min(lines.length - 1, i + extra)]!.end;
  return [text.slice(0, start), text.slice(start, end), text.slice(end)];
}

/**
 * One example from `text`. Draws, in order: FIM or not; then, for FIM, the kind of span (when
 * `lineSpanRate` > 0), its cut points and the order. `plainIds` may pass the text's tokens when already known. Each part is tokenized on its
 * own, as at inference time, where prefix and suffix are encoded apart.
 */
export function makeExample(text: string, ctx: ExampleContext, random: () => number, plainIds?: readonly number[]): Example {
  const { tokenizer, template, endId, options } = ctx;
  const contextAt = (cursor: number) => (template === undefined ? [] : (ctx.contextAt?.(cursor) ?? []));
  const fim = template !== undefined && random() < options.fimRate;
  if (!fim) {
    const contextIds = contextAt(0);
    const head = template?.bosId === undefined ? [] : [template.bosId];
    const tokens = [...head, ...contextIds, ...(plainIds ?? tokenizer.encode(text)), endId];
    const loss = new Uint8Array(tokens.length).fill(1);
    loss.fill(0, head.length, head.length + contextIds.length);
    return { tokens, loss, kind: 'plain' };
  }
  const lineSpan = options.lineSpanRate > 0 && random() < options.lineSpanRate;
  const [prefix, middle, suffix] = lineSpan ? fimLineSplit(text, random) : fimSplit(text, random);
  const order: FimOrder = random() < options.spmRate ? 'spm' : 'psm';
  const contextIds = contextAt(prefix.length);
  const prompt = withContextBlock(template, contextIds, buildFimPrompt(template, tokenizer.encode(prefix), tokenizer.encode(suffix), order));
  const tokens = [...prompt, ...tokenizer.encode(middle), endId];
  const loss = new Uint8Array(tokens.length).fill(1);
  if (options.loss === 'middle') loss.fill(0, 0, prompt.length);
  else if (contextIds.length > 0) {
    const head = template.bosId === undefined ? 0 : 1;
    loss.fill(0, head, head + contextIds.length);
  }
  return { tokens, loss, kind: order };
}
