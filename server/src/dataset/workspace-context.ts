// The repository context of a workspace outside the editor (`kiln complete --workspace`, `kiln eval
// --workspace`, the fine-tune's examples and evaluations): the same RepositoryContext the language
// server keeps, over the same dataset rules, indexed to the end before anything is measured.
import { join, posix, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RepositoryContext } from '../context/repository-context';
import { type ContextSupplier, repositorySupplier, workspacePath } from '../context/supplier';
import type { WorkspaceFiles } from '../context/workspace-files';
import type { ContextSourceName } from '../context/snippet';
import { datasetContextPolicy, workspaceContextFiles } from './context-files';
import { NearDuplicates } from './near-duplicates';

export interface CommandContext {
  context: RepositoryContext;
  root: string;
  /** The workspace path of a file on disk, or undefined outside the workspace. */
  pathOf(file: string): string | undefined;
  supplier(exclude?: (current: string, candidate: string) => boolean): ContextSupplier;
  /** Content keys of every workspace file read, for the near-duplicate rule. */
  duplicates: NearDuplicates;
  dispose(): void;
}

/** Indexes the workspace at `root` (every file it admits) and resolves every file's imports. */
export async function commandContext(root: string, signal?: AbortSignal): Promise<CommandContext> {
  const abs = resolve(root);
  const duplicates = new NearDuplicates();
  const base = workspaceContextFiles(abs);
  // the same files, their content keys noted as they are read
  const files: WorkspaceFiles = {
    list: (s) => base.list(s),
    read: async (path) => {
      const text = await base.read(path);
      if (text !== undefined) duplicates.note(path, text);
      return text;
    },
    refuses: (path) => base.refuses?.(path) ?? Promise.resolve(false), // an open document is judged as the editor's server judges it
  };
  const context = new RepositoryContext({ policy: datasetContextPolicy, files, idle: { quietMs: 0, sliceMs: 50 } });
  await context.indexWorkspace(signal);
  await context.settled();
  const pathOf = (file: string) => {
    const rel = relative(abs, resolve(file)).split('\\').join('/');
    return rel === '' || rel.startsWith('../') || rel === '..' ? undefined : posix.normalize(rel);
  };
  return {
    context,
    root: abs,
    pathOf,
    duplicates,
    supplier: (exclude) =>
      repositorySupplier(context, {
        repoName: posix.basename(abs.split('\\').join('/')),
        pathOf: (uri) => workspacePath(abs, uri),
        ...(exclude === undefined ? {} : { exclude }),
      }),
    dispose: () => context.dispose(),
  };
}

/** What an evaluation draws context through (evaluation/evaluate.ts's EvalContext has this shape). */
export interface WorkspaceEvalContext {
  context: { supplier: ContextSupplier; sources: readonly ContextSourceName[]; uriOf: (path: string) => string; maxTokens?: number };
  dispose(): void;
}

/**
 * Context for scoring `files` (paths relative to `dir`, inside the workspace `root`): their
 * workspace paths name them, and neither they nor their near-duplicates ever give context.
 */
export async function evalContextFor(request: {
  root: string;
  dir: string;
  files: readonly { path: string; text: string }[];
  sources: readonly ContextSourceName[];
  maxTokens?: number;
}): Promise<WorkspaceEvalContext> {
  const cc = await commandContext(request.root);
  const uriByPath = new Map<string, string>();
  for (const file of request.files) {
    const path = cc.pathOf(join(request.dir, file.path));
    if (path === undefined) {
      cc.dispose();
      throw new RangeError(`${resolve(request.dir)} is not inside the workspace ${cc.root}`);
    }
    cc.duplicates.note(path, file.text); // the scored text's key, whether or not the workspace scan admitted it
    uriByPath.set(file.path, pathToFileURL(join(cc.root, path)).href);
  }
  return {
    context: {
      supplier: cc.supplier((current, candidate) => cc.duplicates.isNearDuplicate(current, candidate)),
      sources: request.sources,
      uriOf: (path) => uriByPath.get(path) ?? pathToFileURL(resolve(request.dir, path)).href,
      ...(request.maxTokens === undefined ? {} : { maxTokens: request.maxTokens }),
    },
    dispose: () => cc.dispose(),
  };
}
