// Post-processing of a finished completion: a chain of small named transforms (DESIGN.md, convention 5).
import { closerOf, isOpener, scanLine } from './stop-rules';

/** What the transforms know about the document around the cursor. */
export interface TransformContext {
  /** Text of the cursor line before the cursor. */
  lineBefore: string;
  /** Document text after the cursor. */
  textAfter: string;
}

/** One post-processing step. */
export type Transform = (completion: string, ctx: TransformContext) => string;

/** The rest of the cursor line after the cursor (no line break). */
function restOfLine(ctx: TransformContext): string {
  const newline = ctx.textAfter.indexOf('\n');
  const rest = newline < 0 ? ctx.textAfter : ctx.textAfter.slice(0, newline);
  return rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

/** Strips trailing whitespace from inner lines, and from the end when the rest of the cursor line is empty or starts with whitespace. */
export const trimTrailingWhitespace: Transform = (completion, ctx) => {
  const lines = completion.split('\n');
  const last = lines.length - 1;
  const trimmed = lines.map((line, i) => (i < last ? line.replace(/[ \t\r]+$/, (ws) => (ws.endsWith('\r') ? '\r' : '')) : line));
  const joined = trimmed.join('\n');
  const rest = restOfLine(ctx);
  return rest === '' || /^\s/.test(rest) ? joined.trimEnd() : joined;
};

/**
 * Removes the longest end of the completion that equals a start of the rest of the cursor line, since
 * the document already has it (`a, b)` before `)` → `a, b`), unless that end closes brackets the
 * completion itself opened (`foo()` before `)` stays: inside `bar(█)` it reads `bar(foo())`).
 */
export const trimSuffixOverlap: Transform = (completion, ctx) => {
  const rest = restOfLine(ctx);
  for (let length = Math.min(completion.length, rest.length); length > 0; length--) {
    const cut = completion.length - length;
    if (completion.endsWith(rest.slice(0, length)) && !closesOwnBrackets(completion, cut)) return completion.slice(0, cut);
  }
  return completion;
};

/** Drops unmatched closers from the completion's trailing run of closers and whitespace, including those the document already has after the cursor. */
export const balanceBrackets: Transform = (completion, ctx) => {
  const unmatched = new Set(unmatchedClosers(completion, openBeforeCursor(ctx)));
  if (unmatched.size === 0) return completion;
  let runStart = completion.length;
  while (runStart > 0 && /[\s)\]}]/.test(completion[runStart - 1]!)) runStart--;
  let run = '';
  let dropped = false;
  for (let i = runStart; i < completion.length; i++) {
    if (unmatched.has(i)) dropped = true;
    else run += completion[i];
  }
  return dropped ? completion.slice(0, runStart) + run.trimEnd() : completion;
};

/** Turns a completion of only whitespace into no completion. */
export const dropWhitespaceOnly: Transform = (completion) => (completion.trim() === '' ? '' : completion);

/** The default chain, in order. */
export const DEFAULT_TRANSFORMS: readonly Transform[] = [trimTrailingWhitespace, trimSuffixOverlap, balanceBrackets, dropWhitespaceOnly];

/** Runs the transforms in order. */
export function applyTransforms(text: string, ctx: TransformContext, chain: readonly Transform[] = DEFAULT_TRANSFORMS): string {
  return chain.reduce((out, transform) => transform(out, ctx), text);
}

interface Bracket {
  /** Offset in the whole completion. */
  index: number;
  char: string;
}

/** The brackets of a (multi-line) text outside strings and comments, line by line. */
function bracketsOf(text: string): Bracket[] {
  const out: Bracket[] = [];
  let lineStart = 0;
  for (const line of text.split('\n')) {
    for (const b of scanLine(line).brackets) out.push({ index: lineStart + b.index, char: b.char });
    lineStart += line.length + 1;
  }
  return out;
}

/** True when a closer at or after `cut` matches an opener before `cut`. */
function closesOwnBrackets(completion: string, cut: number): boolean {
  const stack: Bracket[] = [];
  for (const b of bracketsOf(completion)) {
    if (isOpener(b.char)) stack.push(b);
    else if (stack.length > 0 && closerOf(stack[stack.length - 1]!.char) === b.char) {
      const opener = stack.pop()!;
      if (b.index >= cut && opener.index < cut) return true;
    }
  }
  return false;
}

/** Openers left open before the cursor on its line and not already closed by the rest of that line (innermost last). */
function openBeforeCursor(ctx: TransformContext): string[] {
  const open: string[] = [];
  for (const b of scanLine(ctx.lineBefore).brackets) {
    if (isOpener(b.char)) open.push(b.char);
    else if (open.length > 0 && closerOf(open[open.length - 1]!) === b.char) open.pop();
  }
  const restOpen: string[] = [];
  for (const b of scanLine(restOfLine(ctx)).brackets) {
    if (isOpener(b.char)) restOpen.push(b.char);
    else if (restOpen.length > 0) restOpen.pop();
    else if (open.length > 0 && closerOf(open[open.length - 1]!) === b.char) open.pop();
  }
  return open;
}

/** Offsets of closers that match neither an opener in the completion nor one still open before the cursor. */
function unmatchedClosers(completion: string, openBefore: string[]): number[] {
  const available = [...openBefore];
  const own: string[] = [];
  const out: number[] = [];
  for (const b of bracketsOf(completion)) {
    if (isOpener(b.char)) own.push(b.char);
    else if (own.length > 0) {
      if (closerOf(own[own.length - 1]!) === b.char) own.pop();
      else out.push(b.index);
    } else if (available.length > 0 && closerOf(available[available.length - 1]!) === b.char) available.pop();
    else out.push(b.index);
  }
  return out;
}
