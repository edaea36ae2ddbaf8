// Similar windows of other files: every indexed file is cut into fixed-size windows of lines, each
// kept as its identifier set; a query (the lines before the cursor) ranks windows by Jaccard
// similarity through an inverted index, so only windows that share an identifier are looked at.
// Memory is bounded (windows, characters per file and in all) by evicting the least recently
// updated files; indexing is the caller's to schedule off the keystroke path (idle-indexer.ts).
import { identifierSet } from './identifiers';
import { BestPerFile, MIN_SIMILARITY } from './similar-query';
import { type ContextSnippet, linesOf, splitLines } from './snippet';

export interface SimilarIndexOptions {
  /** Lines per window (default 12). */
  windowLines: number;
  /** Lines between window starts (default 6: windows overlap by half). */
  stride: number;
  /** Windows kept over all files (default 20,000); the least recently updated files go first. */
  maxWindows: number;
  /** A longer file is not indexed (default 256 KiB of text). */
  maxFileChars: number;
  /** Text kept over all files (default 24 Mi chars). */
  maxTotalChars: number;
}

export const DEFAULT_SIMILAR_INDEX: Readonly<SimilarIndexOptions> = Object.freeze({
  windowLines: 12,
  stride: 6,
  maxWindows: 20_000,
  maxFileChars: 256 * 1024,
  maxTotalChars: 24 * 2 ** 20,
});

interface Window {
  path: string;
  startLine: number;
  endLine: number;
  ids: ReadonlySet<string>;
}

interface IndexedFile {
  lines: string[];
  chars: number;
  windowIds: number[];
}

export interface SimilarQuery {
  /** Paths never returned (the current file, near-duplicates of a scored file). */
  exclude?: (path: string) => boolean;
  /** Snippets returned (default 4). */
  limit?: number;
  /** Below this Jaccard similarity a window is not worth its tokens (default 0.1). */
  minScore?: number;
}

export class SimilarWindowIndex {
  readonly options: SimilarIndexOptions;
  private readonly files = new Map<string, IndexedFile>();
  private readonly windows = new Map<number, Window>();
  private readonly postings = new Map<string, Set<number>>();
  private nextId = 0;
  private totalChars = 0;
  /** Identifiers each window shares with the query being answered, by window id; zero between queries. */
  private shared = new Uint32Array(1024);

  constructor(options: Partial<SimilarIndexOptions> = {}) {
    this.options = { ...DEFAULT_SIMILAR_INDEX, ...options };
    const { windowLines, stride } = this.options;
    if (!(Number.isInteger(windowLines) && windowLines > 0 && Number.isInteger(stride) && stride > 0)) throw new RangeError('windowLines and stride must be positive integers');
  }

  /** Bumped by every update and removal: a query's answer is valid while it stays the same. */
  version = 0;
  /** Queries answered (the storm test bounds this). */
  queries = 0;

  get fileCount(): number {
    return this.files.size;
  }

  get windowCount(): number {
    return this.windows.size;
  }

  get charCount(): number {
    return this.totalChars;
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  /** Indexes `text` as the content of `path` (replacing what was there); false when the file is too large to index. */
  update(path: string, text: string): boolean {
    this.remove(path);
    this.version++;
    if (text.length > this.options.maxFileChars) return false;
    const lines = splitLines(text);
    const { windowLines, stride } = this.options;
    const windowIds: number[] = [];
    for (let start = 0; start < lines.length; start += stride) {
      const end = Math.min(lines.length, start + windowLines);
      const ids = identifierSet(linesOf(lines, start, end));
      if (ids.size > 0) {
        const id = this.nextId++;
        this.windows.set(id, { path, startLine: start, endLine: end, ids });
        for (const word of ids) {
          const set = this.postings.get(word);
          if (set === undefined) this.postings.set(word, new Set([id]));
          else set.add(id);
        }
        windowIds.push(id);
      }
      if (end === lines.length) break;
    }
    this.files.set(path, { lines, chars: text.length, windowIds });
    this.totalChars += text.length;
    this.evict(path);
    if (this.nextId > 4 * Math.max(this.windows.size, 1024)) this.renumber();
    return true;
  }

  /**
   * Window ids handed out again from 0, in their old order (ties between windows still go the same
   * way): every update hands out new ones, and the query's counts are indexed by id, so without this
   * an editor session's edits would grow them without bound.
   */
  private renumber(): void {
    const renamed = new Map<number, number>();
    for (const id of [...this.windows.keys()].sort((a, b) => a - b)) renamed.set(id, renamed.size);
    const windows = [...this.windows.entries()];
    this.windows.clear();
    for (const [id, w] of windows) this.windows.set(renamed.get(id)!, w);
    for (const [word, ids] of this.postings) this.postings.set(word, new Set([...ids].map((id) => renamed.get(id)!)));
    for (const file of this.files.values()) file.windowIds = file.windowIds.map((id) => renamed.get(id)!);
    this.nextId = renamed.size;
    this.shared = new Uint32Array(Math.max(1024, this.nextId));
  }

  remove(path: string): void {
    const file = this.files.get(path);
    if (file === undefined) return;
    this.version++;
    for (const id of file.windowIds) {
      for (const word of this.windows.get(id)!.ids) {
        const set = this.postings.get(word)!;
        set.delete(id);
        if (set.size === 0) this.postings.delete(word);
      }
      this.windows.delete(id);
    }
    this.totalChars -= file.chars;
    this.files.delete(path);
  }

  /** Oldest files out until both bounds hold; `keep` (the file just indexed) stays. */
  private evict(keep: string): void {
    for (const path of this.files.keys()) {
      if (this.windows.size <= this.options.maxWindows && this.totalChars <= this.options.maxTotalChars) return;
      if (path !== keep) this.remove(path);
    }
  }

  /** The best windows for `query` (an identifier set), best first, at most one per file. */
  query(query: ReadonlySet<string>, options: SimilarQuery = {}): ContextSnippet[] {
    const limit = options.limit ?? 4;
    const minScore = options.minScore ?? MIN_SIMILARITY;
    if (query.size === 0 || limit <= 0) return [];
    this.queries++;
    // counted in a reused array, not a map: a query in a large repository touches thousands of windows
    if (this.shared.length < this.nextId) this.shared = new Uint32Array(Math.max(this.nextId, 2 * this.shared.length));
    const counts = this.shared;
    const touched: number[] = [];
    for (const word of query) for (const id of this.postings.get(word) ?? []) if (counts[id]++ === 0) touched.push(id);
    const best = new BestPerFile<Window>(minScore);
    for (const id of touched) {
      const shared = counts[id]!;
      counts[id] = 0;
      const w = this.windows.get(id)!;
      if (options.exclude?.(w.path)) continue;
      // ties go to the earlier window, so the pick does not depend on map order
      best.offer(w.path, id, shared / (query.size + w.ids.size - shared), w);
    }
    return best.top(limit).map(({ item: w, score }) => ({
      source: 'similar' as const,
      path: w.path,
      startLine: w.startLine,
      endLine: w.endLine,
      text: linesOf(this.files.get(w.path)!.lines, w.startLine, w.endLine),
      score,
    }));
  }
}
