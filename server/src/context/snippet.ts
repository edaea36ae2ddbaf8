// What the context block is made of: snippets of code from outside the cursor's window, each named
// by the source that found it, the file it came from and its line range there.

/** The sources of context, in the block's order (the order never depends on scores: see block.ts). */
export const CONTEXT_SOURCES = ['imports', 'edits', 'viewed', 'similar'] as const;
export type ContextSourceName = (typeof CONTEXT_SOURCES)[number];

export interface ContextSnippet {
  source: ContextSourceName;
  /** Workspace-relative path with "/" separators (what the block's header names). */
  path: string;
  /** 0-based line range [startLine, endLine) in that file. */
  startLine: number;
  endLine: number;
  text: string;
  /** Higher is better within a source (recency, Jaccard, import order); never compared across sources. */
  score: number;
}

/** A snippet as a remote backend takes it (llama.cpp /infill's `input_extra`). */
export interface ContextChunk {
  filename: string;
  text: string;
}

export function toChunks(snippets: readonly ContextSnippet[]): ContextChunk[] {
  return snippets.map((s) => ({ filename: s.path, text: s.text }));
}

/** `all`, `none` or a comma list of source names; throws naming the unknown one. */
export function parseContextSources(spec: string): ContextSourceName[] {
  const trimmed = spec.trim();
  if (trimmed === 'all') return [...CONTEXT_SOURCES];
  if (trimmed === 'none' || trimmed === '') return [];
  const names = trimmed.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(CONTEXT_SOURCES as readonly string[]).includes(name)) throw new RangeError(`unknown context source "${name}" (known: ${CONTEXT_SOURCES.join(', ')}, or all / none)`);
  }
  return CONTEXT_SOURCES.filter((s) => names.includes(s));
}

/** The lines [start, end) of `text` (0-based), joined with "\n". */
export function linesOf(lines: readonly string[], start: number, end: number): string {
  return lines.slice(Math.max(0, start), Math.min(lines.length, end)).join('\n');
}

/** Splits text into lines, dropping the "\r" of CRLF endings. */
export function splitLines(text: string): string[] {
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** The 0-based line holding char offset `offset`. */
export function lineAt(text: string, offset: number): number {
  let n = 0;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf('\n'); i >= 0 && i < end; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
