// When to stop decoding a completion, and which part of the generated text to keep.
//
// Rules, checked on the whole generated text at every step (line 0 continues the cursor line):
//   both modes  suffix overlap on the cursor line: line 0 reaches the rest of the cursor line (trimmed)
//               at a point outside strings where the completion's own brackets are balanced
//               → keep the text before it ('suffix-overlap').
//   'line'      the first newline ends the completion → keep line 0 ('line-end').
//   'block'     keeps whole lines only. With base = the cursor line's indentation (of lineBefore, or of
//               lineBefore + line 0 when lineBefore is only whitespace):
//               a. a line indented less than base ends the block; it is not kept;
//               b. a blank line (or several) followed by a line indented less than the last non-blank
//                  line ends the block before the blank lines; two blank lines in a row end it too;
//               c. once a block was opened (a line ended inside brackets, counting the cursor line's
//                  own open brackets, or ended with ':'), a line at base indentation that starts with a
//                  closer and brings the bracket depth back to 0 is kept and ends the block; one that
//                  does not start with a closer (the next statement, Python's dedent) is not kept;
//               d. a line equal (indentation included) to the first non-blank line after the cursor
//                  line, while the completion's own brackets are balanced, repeats the document: it ends
//                  the block before it ('suffix-overlap').
//   both modes  degenerate loop: a line ends in one short unit (with a letter or digit) repeated
//               LOOP_COPIES times or more, as small models do greedily ("0, 0, 0, 0, 0, …") → keep
//               the line up to the end of the unit's first copy; in block mode a later line that loops
//               is dropped with what follows ('repetition').
//   limits      tokenCount ≥ maxTokens ('max-tokens') or now() ≥ deadline once tokenCount ≥
//               minTokensBeforeDeadline ('time'); block mode then
//               keeps the complete lines (or the partial line 0 when there is no complete line yet).

export type StopMode = 'line' | 'block';
export type StopReason = 'line-end' | 'block-end' | 'max-tokens' | 'time' | 'suffix-overlap' | 'repetition';

/** What the rules need to know about the request. */
export interface StopContext {
  mode: StopMode;
  /** Text of the cursor line before the cursor. */
  lineBefore: string;
  /** Document text after the cursor. */
  textAfter: string;
  maxTokens: number;
  /** Millisecond timestamp (same clock as `now`). */
  deadline: number;
  /** The deadline cuts nothing shorter than this many tokens (default 0). */
  minTokensBeforeDeadline?: number;
  now?: () => number;
}

/** Whether to stop, why, and the part of the generated text to keep. */
export interface StopDecision {
  stop: boolean;
  reason?: StopReason;
  text: string;
}

export interface StopRules {
  /** Called after each decode step with everything generated so far. */
  check(generated: string, tokenCount: number): StopDecision;
  /** Called once when generation ended on its own (end-of-text): the last line counts as complete. */
  finish(generated: string): StopDecision;
}

/** Stop rules for one request. */
export function createStopRules(ctx: StopContext): StopRules {
  if (ctx.mode !== 'line' && ctx.mode !== 'block') throw new RangeError(`mode must be 'line' or 'block', got ${String(ctx.mode)}`);
  const now = ctx.now ?? Date.now;
  const doc = describeDocument(ctx.lineBefore, ctx.textAfter);
  const evaluate = ctx.mode === 'line' ? (g: string) => evaluateLine(g, doc) : (g: string, final: boolean) => evaluateBlock(g, doc, final);
  return {
    check(generated, tokenCount) {
      const verdict = evaluate(generated, false);
      if (verdict.reason !== undefined) return { stop: true, reason: verdict.reason, text: generated.slice(0, verdict.keep) };
      const kept = generated.slice(0, verdict.keep);
      if (tokenCount >= ctx.maxTokens) return { stop: true, reason: 'max-tokens', text: kept };
      if (tokenCount >= (ctx.minTokensBeforeDeadline ?? 0) && now() >= ctx.deadline) return { stop: true, reason: 'time', text: kept };
      return { stop: false, text: generated };
    },
    finish(generated) {
      const verdict = evaluate(generated, true);
      return { stop: true, ...(verdict.reason === undefined ? {} : { reason: verdict.reason }), text: generated.slice(0, verdict.keep) };
    },
  };
}

interface DocumentView {
  lineBefore: string;
  /** The rest of the cursor line, trimmed ('' when there is none). */
  restOfLine: string;
  /** The first non-blank line after the cursor line, trailing whitespace trimmed, or undefined. */
  nextLine: string | undefined;
  /** Brackets left open by the cursor line before the cursor (≥ 0). */
  openBefore: number;
}

/** A stop reason with how many chars of the generated text to keep; no reason: keep is what a limit would keep. */
interface Verdict {
  reason?: StopReason;
  keep: number;
}

function describeDocument(lineBefore: string, textAfter: string): DocumentView {
  const lines = textAfter.split('\n');
  const restOfLine = stripCr(lines[0] ?? '').trim();
  const nextLine = lines
    .slice(1)
    .map((l) => stripCr(l).trimEnd())
    .find((l) => l.trim() !== '');
  return { lineBefore, restOfLine, nextLine, openBefore: Math.max(0, depthChange(lineBefore)) };
}

function evaluateLine(generated: string, doc: DocumentView): Verdict {
  const newline = generated.indexOf('\n');
  const line0 = stripCr(newline < 0 ? generated : generated.slice(0, newline));
  const overlap = restOfLineOverlap(line0, doc.restOfLine);
  if (overlap >= 0) return { reason: 'suffix-overlap', keep: overlap };
  const loop = loopStart(line0);
  if (loop >= 0) return { reason: 'repetition', keep: loop };
  if (newline >= 0) return { reason: 'line-end', keep: line0.length };
  return { keep: line0.length };
}

function evaluateBlock(generated: string, doc: DocumentView, final: boolean): Verdict {
  const lines = generated.split('\n');
  const line0 = stripCr(lines[0]!);
  const overlap = restOfLineOverlap(line0, doc.restOfLine);
  if (overlap >= 0) return { reason: 'suffix-overlap', keep: overlap };
  const loop0 = loopStart(line0);
  if (loop0 >= 0) return { reason: 'repetition', keep: loop0 };
  if (lines.length === 1 && !final) return { keep: line0.length };
  const header = doc.lineBefore + line0;
  const base = indentWidth(doc.lineBefore.trim() === '' ? header : doc.lineBefore);
  let depth = doc.openBefore + depthChange(line0);
  let ownDepth = depthChange(line0);
  let opened = depth > 0 || endsWithColon(header);
  let lastIndent = indentWidth(header);
  let keep = line0.length;
  let blankRun = 0;
  let lineStart = lines[0]!.length + 1;
  for (let i = 1; i < lines.length; lineStart += lines[i]!.length + 1, i++) {
    const body = stripCr(lines[i]!);
    const complete = i < lines.length - 1 || final;
    if (loopStart(body) >= 0) return { reason: 'repetition', keep };
    if (body.trim() === '') {
      if (complete && ++blankRun >= 2) return { reason: 'block-end', keep };
      continue;
    }
    const indent = indentWidth(body);
    if (indent < base) return { reason: 'block-end', keep };
    if (blankRun > 0 && indent < lastIndent) return { reason: 'block-end', keep };
    const closer = startsWithCloser(body);
    if (!complete && /^\w*$/.test(body.trimStart())) break; // the first word may still become `else`
    if (opened && depth <= 0 && indent <= base && !closer && !CONTINUATION.test(body.trimStart())) return { reason: 'block-end', keep };
    if (!complete) break;
    if (doc.nextLine !== undefined && body.trimEnd() === doc.nextLine && ownDepth <= 0) return { reason: 'suffix-overlap', keep };
    const change = depthChange(body);
    depth += change;
    ownDepth += change;
    keep = lineStart + body.length;
    blankRun = 0;
    lastIndent = indent;
    if (opened && closer && indent <= base && depth <= 0) return { reason: 'block-end', keep };
    if (depth > 0 || endsWithColon(body)) opened = true;
  }
  return { keep: lines.length === 1 ? line0.length : keep };
}

/** Where line 0 starts repeating the rest of the cursor line (outside strings, own brackets balanced), or −1. */
function restOfLineOverlap(line0: string, restOfLine: string): number {
  if (restOfLine === '') return -1;
  const scan = scanLine(line0);
  let depth = 0;
  let next = 0;
  for (let p = 0; p <= line0.length - restOfLine.length; p++) {
    while (next < scan.brackets.length && scan.brackets[next]!.index < p) depth += isOpener(scan.brackets[next++]!.char) ? 1 : -1;
    if (depth <= 0 && scan.inCode[p] && line0.startsWith(restOfLine, p)) return p;
  }
  return -1;
}

/** Copies of a unit that make a loop: 4 would cut a legitimate `[0, 0, 0, 0]`. */
const LOOP_COPIES = 5;
const LOOP_MAX_UNIT = 24;
/** Shorter runs are numbers and short literals (`1000000`, `0x0000`), not loops. */
const LOOP_MIN_CHARS = 12;

/**
 * When `line` ends in a loop (a unit of 1–24 chars holding a letter or digit, repeated at least
 * LOOP_COPIES times through the end of the line, LOOP_MIN_CHARS chars or more), where the unit's first
 * copy ends; −1 otherwise. Rules and separators (`=====`, `-----`, indentation) have no letter or digit.
 */
export function loopStart(line: string): number {
  for (let unit = 1; unit <= LOOP_MAX_UNIT && unit * LOOP_COPIES <= line.length; unit++) {
    // the periodic tail: every char equals the one `unit` chars before it
    let start = line.length - unit;
    while (start > 0 && line[start - 1] === line[start - 1 + unit]) start--;
    const run = line.length - start;
    if (run < unit * LOOP_COPIES || run < LOOP_MIN_CHARS) continue;
    if (!/[\p{L}\p{N}]/u.test(line.slice(start, start + unit))) continue;
    return start + unit;
  }
  return -1;
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Leading whitespace width, a tab advancing to the next multiple of 4. */
export function indentWidth(line: string): number {
  let width = 0;
  for (const ch of line) {
    if (ch === ' ') width++;
    else if (ch === '\t') width += 4 - (width % 4);
    else break;
  }
  return width;
}

function endsWithColon(line: string): boolean {
  const scan = scanLine(line);
  const code = line.slice(0, scan.codeEnd).trimEnd();
  return code.endsWith(':') && scan.inCode[code.length - 1] === true;
}

function startsWithCloser(line: string): boolean {
  const first = line.trimStart()[0];
  return first !== undefined && CLOSERS.includes(first);
}

/** Lines that continue the statement above at its indentation rather than start a new one. */
const CONTINUATION = /^(else|elif|except|finally|catch)\b/;

const OPENERS = '([{';
const CLOSERS = ')]}';

/** True for '(', '[' and '{'. */
export function isOpener(ch: string): boolean {
  return OPENERS.includes(ch);
}

/** The closer that matches an opener. */
export function closerOf(opener: string): string {
  return CLOSERS[OPENERS.indexOf(opener)]!;
}

/** Openers minus closers in one line of code, outside strings and comments. */
export function depthChange(line: string): number {
  return scanLine(line).brackets.reduce((d, b) => d + (isOpener(b.char) ? 1 : -1), 0);
}

/** One line of code, read roughly: its brackets outside strings and comments, and which chars are code. */
export interface LineScan {
  brackets: { index: number; char: string }[];
  /** inCode[i]: char i is outside string literals and comments (an opening quote counts as code). */
  inCode: boolean[];
  /** Where a line comment starts (the line's length when there is none). */
  codeEnd: number;
}

/** Scans one line: quotes ' " ` with backslash escapes, `//` comments, and `#` comments after whitespace. */
export function scanLine(line: string): LineScan {
  const brackets: { index: number; char: string }[] = [];
  const inCode: boolean[] = new Array<boolean>(line.length).fill(false);
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote !== '') {
      if (ch === '\\') i++;
      else if (ch === quote) quote = '';
      continue;
    }
    if ((ch === '/' && line[i + 1] === '/') || (ch === '#' && (i === 0 || /\s/.test(line[i - 1]!)))) return { brackets, inCode, codeEnd: i };
    inCode[i] = true;
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if (OPENERS.includes(ch) || CLOSERS.includes(ch)) brackets.push({ index: i, char: ch });
  }
  return { brackets, inCode, codeEnd: line.length };
}
