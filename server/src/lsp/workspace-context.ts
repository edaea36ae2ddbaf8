// The language server's side of repository context: one RepositoryContext for the workspace root,
// fed by the documents the client opens, changes (with their changed line ranges) and shows
// (kiln/visibleRanges), with the workspace's files read through the dataset's rules when idle.
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TextDocumentContentChangeEvent } from 'vscode-languageserver-textdocument';
import type { LineChange } from '../context/recent-activity';
import { RepositoryContext } from '../context/repository-context';
import { type ContextSupplier, repositorySupplier, workspacePath } from '../context/supplier';
import { datasetContextPolicy, workspaceContextFiles } from '../dataset/context-files';

/** The changed line ranges of one didChange's content changes; undefined when one replaced the whole text (no range). */
export function lineChanges(changes: readonly TextDocumentContentChangeEvent[]): LineChange[] | undefined {
  const out: LineChange[] = [];
  for (const c of changes) {
    if (!('range' in c)) return undefined;
    let inserted = 0;
    for (let i = c.text.indexOf('\n'); i >= 0; i = c.text.indexOf('\n', i + 1)) inserted++;
    out.push({ startLine: c.range.start.line, endLine: c.range.end.line, insertedLines: inserted });
  }
  return out;
}

/** The workspace's context, or nothing until the server knows a root folder. */
export class WorkspaceContext {
  private context: RepositoryContext | undefined;
  private root: string | undefined;
  private readonly abort = new AbortController();

  /** Starts for `rootUri` (the initialize params' first workspace folder); indexing runs when idle. */
  start(rootUri: string | undefined, log: (message: string) => void): void {
    if (rootUri === undefined || !rootUri.startsWith('file:')) return;
    const root = fileURLToPath(rootUri);
    this.root = root;
    this.context = new RepositoryContext({ policy: datasetContextPolicy, files: workspaceContextFiles(root) });
    this.context.indexWorkspace(this.abort.signal).catch((err) => log(`context: the workspace could not be listed (${(err as Error).message}); open documents still give context`));
  }

  /** What the engine asks for context (answers nothing until started). */
  readonly supplier: ContextSupplier = {
    contextFor: (request) => {
      const { context, root } = this;
      if (context === undefined || root === undefined) return undefined;
      return repositorySupplier(context, { repoName: posix.basename(root.replace(/\\/g, '/')), pathOf: (uri) => workspacePath(root, uri) }).contextFor(request);
    },
  };

  private pathOf(uri: string): string | undefined {
    return this.root === undefined ? undefined : workspacePath(this.root, uri);
  }

  opened(uri: string, text: string): void {
    const path = this.pathOf(uri);
    if (path !== undefined) this.context?.openDocument(path, text);
  }

  changed(uri: string, text: string, changes: readonly TextDocumentContentChangeEvent[]): void {
    const path = this.pathOf(uri);
    if (path !== undefined) this.context?.changeDocument(path, text, lineChanges(changes));
  }

  closed(uri: string): void {
    const path = this.pathOf(uri);
    if (path !== undefined) this.context?.closeDocument(path);
  }

  viewed(uri: string, ranges: readonly { start: number; end: number }[]): void {
    const path = this.pathOf(uri);
    if (path !== undefined) this.context?.viewDocument(path, ranges);
  }

  /** Resolves when the context's idle work (reading, scrubbing, indexing) has all run. */
  settled(): Promise<void> {
    return this.context?.settled() ?? Promise.resolve();
  }

  dispose(): void {
    this.abort.abort();
    this.context?.dispose();
  }
}
