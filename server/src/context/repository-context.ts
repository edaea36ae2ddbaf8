// The context sources of one workspace, together: open documents (their admitted text, refreshed
// when idle), recent edits and views, the similar-window index over open documents and workspace
// files, and the declarations each file imports. `candidates` runs on the keystroke path and only
// looks things up; everything that reads, scrubs or indexes runs in the idle queue.
import { declarationsOf, languageOf, parseRelativeImports, resolveImport } from './imports';
import { IdleQueue, type IdleQueueOptions } from './idle-queue';
import { type LineChange, type LineRange, RecentActivity } from './recent-activity';
import { type SimilarIndexOptions, SimilarWindowIndex } from './similar-index';
import { cursorQuery, SIMILAR_LIMIT } from './similar-query';
import { CONTEXT_SOURCES, type ContextSnippet, type ContextSourceName, lineAt, linesOf, splitLines } from './snippet';
import type { ContextPolicy, WorkspaceFiles } from './workspace-files';

export interface RepositoryContextOptions {
  policy: ContextPolicy;
  /** The workspace's files; without it only open documents give context. */
  files?: WorkspaceFiles;
  index?: Partial<SimilarIndexOptions>;
  idle?: Partial<IdleQueueOptions>;
  /** Workspace files indexed at most (default 2,000); open documents always are. */
  maxWorkspaceFiles?: number;
}

export interface CandidateRequest {
  path: string;
  text: string;
  /** The cursor, in chars. */
  offset: number;
  sources: readonly ContextSourceName[];
  /** Paths never used (a scored file's near-duplicates). */
  exclude?: (path: string) => boolean;
}

/** Lines of an edit or view snippet at most. */
const MAX_SNIPPET_LINES = 12;
/** A snippet of the current file must stay this many lines clear of the cursor: the prompt's own windows show what is near it. */
const NEAR_LINES = 32;
interface OpenDocument {
  /** The admitted (scrubbed) lines; undefined when the policy refused the file or it is not admitted yet. */
  lines?: string[];
  /**
   * The changes since `lines` were admitted, oldest first (undefined past MAX_PENDING_CHANGES): the
   * edits' ranges and the cursor move with the live text, `lines` do not, so they are mapped back.
   */
  since?: LineChange[];
  text: string;
  dirty: boolean;
}

/** Changes remembered between admissions; past this a document's edits give no snippet until it is admitted again. */
const MAX_PENDING_CHANGES = 256;

/**
 * Lines [first, last] (inclusive) of the live text in the coordinates of the text before `changes`:
 * a line a change wrote maps to all the lines that change replaced (its text may hold any of them).
 */
export function linesBefore(first: number, last: number, changes: readonly LineChange[]): { first: number; last: number } {
  let lo = first;
  let hi = last;
  for (let i = changes.length - 1; i >= 0; i--) {
    const c = changes[i]!;
    const delta = c.insertedLines - (c.endLine - c.startLine);
    if (lo > c.startLine + c.insertedLines) lo -= delta;
    else if (lo >= c.startLine) lo = c.startLine;
    if (hi > c.startLine + c.insertedLines) hi -= delta;
    else if (hi >= c.startLine) hi = c.endLine;
  }
  return { first: lo, last: hi };
}

interface ImportedDeclarations {
  path: string;
  text: string;
}

export class RepositoryContext {
  private readonly documents = new Map<string, OpenDocument>();
  readonly activity = new RecentActivity();
  readonly index: SimilarWindowIndex;
  readonly idle: IdleQueue;
  private readonly known = new Set<string>();
  /** Per file: the declarations of its relative imports, resolved when idle. */
  private readonly imports = new Map<string, ImportedDeclarations[]>();
  private readonly maxWorkspaceFiles: number;
  private lastSimilar: { key: string; snippets: ContextSnippet[] } | undefined;
  /** Admissions (policy runs) so far: the storm test bounds this. */
  admissions = 0;

  constructor(private readonly options: RepositoryContextOptions) {
    this.index = new SimilarWindowIndex(options.index);
    this.idle = new IdleQueue(options.idle);
    this.maxWorkspaceFiles = options.maxWorkspaceFiles ?? 2_000;
  }

  /** Lists the workspace and indexes its files in idle slices; resolves when the listing is queued. */
  async indexWorkspace(signal?: AbortSignal): Promise<void> {
    const files = this.options.files;
    if (files === undefined) return;
    const paths = (await files.list(signal)).slice(0, this.maxWorkspaceFiles);
    for (const p of paths) this.known.add(p);
    for (const path of paths) {
      this.idle.add(`file:${path}`, async () => {
        if (this.documents.has(path)) return; // an open document is indexed from its live text
        const text = await files.read(path);
        if (text !== undefined && !this.documents.has(path)) this.index.update(path, text);
        if (text !== undefined) this.resolveImportsOf(path, text);
      });
    }
  }

  /** Resolves when every queued idle task has run. */
  settled(): Promise<void> {
    return this.idle.idle();
  }

  openDocument(path: string, text: string): void {
    this.known.add(path);
    this.documents.set(path, { text, dirty: true });
    this.refreshLater(path);
  }

  /**
   * Keystroke path: records the edited lines and marks the document for refreshing when idle.
   * `changes` undefined: the whole text was replaced, so its lines map to nothing admitted.
   */
  changeDocument(path: string, text: string, changes: readonly LineChange[] | undefined): void {
    const doc = this.documents.get(path);
    if (doc === undefined) {
      this.openDocument(path, text);
      return;
    }
    if (changes === undefined) {
      doc.since = undefined; // no snippet from its admitted lines until it is admitted again
      this.activity.forget(path);
      doc.text = text;
      doc.dirty = true;
      this.idle.touch();
      this.refreshLater(path);
      return;
    }
    for (const c of changes) this.activity.noteChange(path, c);
    // a change within one line moves no line (linesBefore maps it to itself): only the others are kept
    const moving = changes.filter((c) => c.insertedLines !== 0 || c.endLine !== c.startLine);
    if (doc.since !== undefined && moving.length > 0) doc.since = doc.since.length + moving.length > MAX_PENDING_CHANGES ? undefined : [...doc.since, ...moving];
    doc.text = text;
    doc.dirty = true;
    this.idle.touch();
    this.refreshLater(path);
  }

  closeDocument(path: string): void {
    this.documents.delete(path);
    this.activity.forget(path);
    // back to the file on disk, when it is a workspace file
    const files = this.options.files;
    if (files !== undefined && this.known.has(path)) {
      this.idle.add(`file:${path}`, async () => {
        const text = await files.read(path);
        if (text === undefined) this.index.remove(path);
        else if (!this.documents.has(path)) this.index.update(path, text);
      });
    } else this.index.remove(path);
  }

  viewDocument(path: string, ranges: readonly LineRange[]): void {
    this.activity.noteView(path, ranges);
  }

  private refreshLater(path: string): void {
    this.idle.add(`doc:${path}`, async () => {
      const doc = this.documents.get(path);
      if (doc === undefined || !doc.dirty) return;
      doc.dirty = false;
      // the workspace's rules first (ignored, linked out of it): the editor opens such files too
      if (this.options.files?.refuses !== undefined && (await this.options.files.refuses(path))) {
        doc.lines = undefined;
        this.index.remove(path);
        return;
      }
      if (this.documents.get(path) !== doc) return; // closed meanwhile
      this.admissions++;
      const admitted = this.options.policy.admit(path, doc.text);
      doc.lines = admitted === undefined ? undefined : splitLines(admitted);
      doc.since = [];
      if (admitted === undefined) this.index.remove(path);
      else {
        this.index.update(path, admitted);
        this.resolveImportsOf(path, admitted);
      }
    });
  }

  /** Queues the declarations `path` imports to be read (open documents first, else the workspace file). */
  private resolveImportsOf(path: string, text: string): void {
    const lang = languageOf(path);
    if (lang === undefined) return;
    const wanted = parseRelativeImports(path, text).slice(0, 16);
    this.idle.add(`imports:${path}`, async () => {
      const found: ImportedDeclarations[] = [];
      for (const imp of wanted) {
        const target = resolveImport(path, imp.spec, (p) => this.known.has(p) || this.documents.has(p));
        if (target === undefined || target === path) continue;
        const source = await this.admittedText(target);
        const targetLang = languageOf(target);
        if (source === undefined || targetLang === undefined) continue;
        const text = declarationsOf(source, targetLang, imp.names);
        if (text.trim() !== '') found.push({ path: target, text });
      }
      this.imports.set(path, found);
    });
  }

  private async admittedText(path: string): Promise<string | undefined> {
    const doc = this.documents.get(path);
    if (doc !== undefined) return doc.lines?.join('\n');
    return this.options.files?.read(path);
  }

  /** Imports of `path` resolved now (the CLI and the evaluation wait for them instead of idling). */
  async prepare(path: string, text: string): Promise<void> {
    this.known.add(path);
    this.resolveImportsOf(path, text);
    await this.settled();
  }

  /** Every source's candidates for a cursor, each source's best first; no snippet holds the cursor's line. */
  candidates(request: CandidateRequest): ContextSnippet[] {
    const cursorLine = lineAt(request.text, request.offset);
    // own-file snippets come from its admitted lines: the cursor is compared in their coordinates
    const own = this.documents.get(request.path);
    const near = own?.since === undefined ? { first: cursorLine, last: cursorLine } : linesBefore(cursorLine, cursorLine, own.since);
    const want = new Set(request.sources);
    const excluded = (p: string) => request.exclude?.(p) === true;
    const out: ContextSnippet[] = [];
    for (const source of CONTEXT_SOURCES) {
      if (!want.has(source)) continue;
      if (source === 'imports') out.push(...this.importSnippets(request.path, excluded));
      if (source === 'edits') out.push(...this.editSnippets(request.path, near, excluded));
      if (source === 'viewed') out.push(...this.viewSnippets(request.path, excluded));
      if (source === 'similar') {
        out.push(...this.similarSnippets(request, excluded));
      }
    }
    // the guard every source passes: never the cursor's own line, never near it in its own file
    return out.filter((s) => s.path !== request.path || s.endLine <= near.first - NEAR_LINES || s.startLine > near.last + NEAR_LINES);
  }

  /** The similar windows for the whole lines before the cursor's line; the same query on the same index answers from the last result. */
  private similarSnippets(request: CandidateRequest, excluded: (p: string) => boolean): ContextSnippet[] {
    const query = cursorQuery(request.text, request.offset);
    const key = `${request.path}\0${this.index.version}\0${[...query].sort().join(' ')}`;
    if (this.lastSimilar?.key === key && request.exclude === undefined) return this.lastSimilar.snippets;
    const snippets = this.index.query(query, { exclude: (p) => p === request.path || excluded(p), limit: SIMILAR_LIMIT });
    this.lastSimilar = { key, snippets };
    return snippets;
  }

  private importSnippets(path: string, excluded: (p: string) => boolean): ContextSnippet[] {
    const found = (this.imports.get(path) ?? []).filter((d) => !excluded(d.path));
    return found.map((d, i) => ({ source: 'imports', path: d.path, startLine: 0, endLine: d.text.split('\n').length, text: d.text, score: found.length - i }));
  }

  /** `cursor`: the cursor's lines in the current document's admitted coordinates; snippets' lines are in their document's. */
  private editSnippets(path: string, cursor: { first: number; last: number }, excluded: (p: string) => boolean): ContextSnippet[] {
    const out: ContextSnippet[] = [];
    for (const edit of this.activity.edits()) {
      const doc = this.documents.get(edit.path);
      const lines = doc?.lines;
      if (lines === undefined || doc?.since === undefined || excluded(edit.path)) continue;
      const mapped = linesBefore(edit.start, edit.end - 1, doc.since);
      const first = mapped.first;
      const last = mapped.last + 1;
      const mid = Math.floor((first + last) / 2);
      const start = Math.max(0, Math.min(first - 1, mid - MAX_SNIPPET_LINES / 2));
      const end = Math.min(lines.length, start + MAX_SNIPPET_LINES, Math.max(last + 1, start + 1));
      if (edit.path === path && start <= cursor.last && cursor.first < end) continue;
      const text = linesOf(lines, start, end);
      if (text.trim() !== '') out.push({ source: 'edits', path: edit.path, startLine: start, endLine: end, text, score: edit.seq });
    }
    return out;
  }

  private viewSnippets(path: string, excluded: (p: string) => boolean): ContextSnippet[] {
    const out: ContextSnippet[] = [];
    for (const view of this.activity.viewed()) {
      const doc = this.documents.get(view.path);
      const lines = doc?.lines;
      if (view.path === path || lines === undefined || doc?.since === undefined || excluded(view.path)) continue;
      for (const shown of view.ranges) {
        const mapped = linesBefore(shown.start, shown.end - 1, doc.since);
        const r = { start: mapped.first, end: mapped.last + 1 };
        const mid = Math.floor((r.start + r.end) / 2);
        const start = Math.max(0, Math.min(r.start, mid - MAX_SNIPPET_LINES / 2));
        const end = Math.min(lines.length, r.end, start + MAX_SNIPPET_LINES);
        const text = linesOf(lines, start, end);
        if (end > start && text.trim() !== '') out.push({ source: 'viewed', path: view.path, startLine: start, endLine: end, text, score: view.seq });
      }
    }
    return out;
  }

  dispose(): void {
    this.idle.dispose();
  }
}
