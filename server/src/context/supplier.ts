// What the completion engine asks for context through: the candidates for a cursor and the names
// the block's headers use. The language server, `kiln complete --workspace` and `kiln eval
// --workspace` each supply one over a RepositoryContext, so all three build the same prompt.
import { posix } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RepositoryContext } from './repository-context';
import type { ContextSnippet, ContextSourceName } from './snippet';

export interface ContextForCursor {
  /** The document's workspace-relative path. */
  path: string;
  repoName: string;
  candidates: ContextSnippet[];
}

export interface ContextSupplier {
  /** Undefined when the document has no context (not in the workspace, or context is off). */
  contextFor(request: { uri: string; text: string; offset: number; sources: readonly ContextSourceName[] }): ContextForCursor | undefined;
}

/** A supplier over one workspace's sources: `pathOf` maps a document URI to its workspace path (undefined outside it). */
export function repositorySupplier(
  context: RepositoryContext,
  names: { repoName: string; pathOf: (uri: string) => string | undefined; exclude?: (current: string, candidate: string) => boolean },
): ContextSupplier {
  return {
    contextFor({ uri, text, offset, sources }) {
      const path = names.pathOf(uri);
      if (path === undefined) return undefined;
      const exclude = names.exclude;
      const candidates = context.candidates({ path, text, offset, sources, ...(exclude === undefined ? {} : { exclude: (candidate: string) => exclude(path, candidate) }) });
      return { path, repoName: names.repoName, candidates };
    },
  };
}

/** A workspace-relative "/" path for a file: URI under `root`, else undefined. */
export function workspacePath(root: string, uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  let file: string;
  try {
    file = fileURLToPath(uri);
  } catch {
    return undefined;
  }
  const rootUrl = pathToFileURL(root).href.replace(/\/?$/, '/');
  const href = pathToFileURL(file).href;
  if (!href.startsWith(rootUrl)) return undefined;
  const rel = decodeURIComponent(href.slice(rootUrl.length));
  return rel === '' || rel.split('/').includes('..') ? undefined : posix.normalize(rel);
}
