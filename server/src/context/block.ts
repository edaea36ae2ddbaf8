// The context block: the snippets chosen under a token budget and written in the model's
// repo-level format (Qwen2.5-Coder's `<|repo_name|>name\n<|file_sep|>path\ncode…<|file_sep|>current`)
// or, for a model without one, as comment headers naming each path. It sits before the FIM part of
// the prompt, so its tokens must not change while the user types: snippets are written in a fixed
// order (source, path, line — never by score), and a snippet already in the block is preferred over
// a slightly better newcomer (hysteresis), so the block changes only when its snippets do.
import type { FimTemplate } from '../model/fim';
import { CONTEXT_SOURCES, type ContextSnippet } from './snippet';

export type ContextFormat = 'repo' | 'comment';

export interface ContextBlock {
  /** The snippets written, in block order. */
  snippets: ContextSnippet[];
  /** The block's token ids (empty when no snippet was chosen). */
  tokens: number[];
  /** Identifies the chosen snippets: the same key means the same tokens. */
  key: string;
}

export const EMPTY_BLOCK: ContextBlock = Object.freeze({ snippets: [], tokens: [], key: '' }) as ContextBlock;

export interface BlockRequest {
  /** Candidates of every source, each source's best first. */
  candidates: readonly ContextSnippet[];
  /** The file being completed (named last in the repo-level format). */
  currentPath: string;
  /** The repository's name (the repo-level format's first line). */
  repoName: string;
  maxTokens: number;
  /** Tokenizes through the prompt's piece cache (the same text gives the same ids). */
  encode: (text: string) => readonly number[];
  template: FimTemplate;
  /** Default: 'repo' when the template has the file separator and repo-name tokens. */
  format?: ContextFormat;
  /** Keys of the snippets in this document's previous block (see snippetKey). */
  previous?: ReadonlySet<string>;
}

/** A snippet already in the block counts this much more when ranked within its source. */
export const STICKY_BONUS = 1.5;
/** A snippet cut to fit the budget keeps at least this many lines, or is left out. */
const MIN_LINES = 2;

/** Which format a template gets by default. */
export function defaultFormat(template: FimTemplate): ContextFormat {
  return template.fileSepId !== undefined && template.repoNameId !== undefined ? 'repo' : 'comment';
}

/** Identity of a snippet: source, place and text (a changed text is another snippet). */
export function snippetKey(s: ContextSnippet): string {
  return `${s.source}\0${s.path}\0${s.startLine}\0${s.endLine}\0${s.text.length}\0${fnv(s.text)}`;
}

function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}

/** The comment marker of a path's language, for the comment-header format. */
export function commentMarker(path: string): string {
  return /\.(py|pyi|rb|sh|bash|zsh|r|pl|toml|ya?ml|ex|exs|jl|nim)$/i.test(path) ? '#' : /\.(sql|lua|hs)$/i.test(path) ? '--' : '//';
}

/** The token ids of one snippet in the block. */
function snippetTokens(s: ContextSnippet, format: ContextFormat, request: BlockRequest): number[] {
  if (format === 'repo') return [request.template.fileSepId!, ...request.encode(`${s.path}\n${s.text}\n`)];
  return [...request.encode(`${commentMarker(s.path)} ${s.path}\n${s.text}\n\n`)];
}

/** The tokens that open a non-empty block and name the current file. */
function frameTokens(format: ContextFormat, request: BlockRequest): { head: number[]; tail: number[] } {
  if (format === 'repo') {
    return { head: [request.template.repoNameId!, ...request.encode(`${request.repoName}\n`)], tail: [request.template.fileSepId!, ...request.encode(`${request.currentPath}\n`)] };
  }
  return { head: [], tail: [...request.encode(`${commentMarker(request.currentPath)} ${request.currentPath}\n`)] };
}

/** Two snippets showing the same lines; an import's declarations are gathered from all over their file, so they overlap nothing. */
function overlaps(a: ContextSnippet, b: ContextSnippet): boolean {
  if (a.source === 'imports' || b.source === 'imports') return a.source === b.source && a.path === b.path;
  return a.path === b.path && a.startLine < b.endLine && b.startLine < a.endLine;
}

/** The snippet's first `lines` lines. */
function cutLines(s: ContextSnippet, lines: number): ContextSnippet {
  const text = s.text.split('\n').slice(0, lines).join('\n');
  return { ...s, text, endLine: s.startLine + lines };
}

/**
 * Chooses snippets under the budget: one from each source in turn (imports, edits, viewed, similar),
 * each source's ranked by score (previous ones boosted), skipping those that overlap a chosen one;
 * one that does not fit is cut by lines from its end, or left out. The chosen ones are written in
 * block order.
 */
export function buildContextBlock(request: BlockRequest): ContextBlock {
  const format = request.format ?? defaultFormat(request.template);
  if (format === 'repo' && (request.template.fileSepId === undefined || request.template.repoNameId === undefined))
    throw new Error('the repo-level format needs the file separator and repo-name tokens');
  if (request.maxTokens <= 0 || request.candidates.length === 0) return EMPTY_BLOCK;
  const frame = frameTokens(format, request);
  let left = request.maxTokens - frame.head.length - frame.tail.length;
  const previous = request.previous ?? new Set<string>();
  const queues = CONTEXT_SOURCES.map((source) =>
    request.candidates
      .filter((c) => c.source === source)
      .map((c, i) => ({ c, rank: c.score * (previous.has(snippetKey(c)) ? STICKY_BONUS : 1), i }))
      .sort((a, b) => b.rank - a.rank || a.i - b.i)
      .map((x) => x.c),
  );
  const chosen: { s: ContextSnippet; tokens: number[] }[] = [];
  while (left > 0 && queues.some((q) => q.length > 0)) {
    for (const queue of queues) {
      const next = queue.shift();
      if (next === undefined || chosen.some((c) => overlaps(c.s, next))) continue;
      const fitted = fit(next, left, format, request);
      if (fitted === undefined) continue;
      chosen.push(fitted);
      left -= fitted.tokens.length;
    }
  }
  if (chosen.length === 0) return EMPTY_BLOCK;
  const order = (s: ContextSnippet) => CONTEXT_SOURCES.indexOf(s.source);
  chosen.sort((a, b) => order(a.s) - order(b.s) || (a.s.path < b.s.path ? -1 : a.s.path > b.s.path ? 1 : 0) || a.s.startLine - b.s.startLine);
  return {
    snippets: chosen.map((c) => c.s),
    tokens: [...frame.head, ...chosen.flatMap((c) => c.tokens), ...frame.tail],
    key: chosen.map((c) => snippetKey(c.s)).join('\n'),
  };
}

/** The snippet (or its first lines) within `budget` tokens, or undefined when not even MIN_LINES fit. */
function fit(s: ContextSnippet, budget: number, format: ContextFormat, request: BlockRequest): { s: ContextSnippet; tokens: number[] } | undefined {
  const tokens = snippetTokens(s, format, request);
  if (tokens.length <= budget) return { s, tokens };
  const lines = s.text.split('\n').length;
  // fewer lines, sized by the measured tokens per line, until it fits
  for (let n = Math.min(lines - 1, Math.floor((lines * budget) / tokens.length)); n >= MIN_LINES; n--) {
    const cut = cutLines(s, n);
    const t = snippetTokens(cut, format, request);
    if (t.length <= budget) return { s: cut, tokens: t };
  }
  return undefined;
}
