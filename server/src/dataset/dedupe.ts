// Exact deduplication by normalized content: line endings, trailing whitespace and blank lines at
// either end do not make two files different.
import { createHash } from 'node:crypto';

/** sha256 of the text with CRLF/CR made LF, trailing spaces stripped from lines, and the ends trimmed. */
export function contentKey(text: string): string {
  const normalized = text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t]+$/gm, '')
    .replace(/^\n+|\n+$/g, '');
  return createHash('sha256').update(normalized).digest('hex');
}

export interface Deduped<T> {
  kept: T[];
  /** Each dropped file with the path of the kept one it repeats. */
  duplicates: { item: T; of: string }[];
}

/** Keeps the first file of every content (in the given order, which callers sort by path). */
export function dedupeByContent<T extends { path: string; text: string }>(files: readonly T[]): Deduped<T> {
  const seen = new Map<string, string>();
  const result: Deduped<T> = { kept: [], duplicates: [] };
  for (const file of files) {
    const key = contentKey(file.text);
    const of = seen.get(key);
    if (of === undefined) {
      seen.set(key, file.path);
      result.kept.push(file);
    } else {
      result.duplicates.push({ item: file, of });
    }
  }
  return result;
}
