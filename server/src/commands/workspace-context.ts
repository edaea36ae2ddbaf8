// The repository context of a workspace for a command (`kiln complete --workspace`, `kiln eval
// --workspace`, the fine-tune's evaluations): the same RepositoryContext the language server keeps,
// over the same dataset rules, indexed to the end before anything is measured (no idle waiting).
import { posix, relative, resolve } from 'node:path';
import { RepositoryContext } from '../context/repository-context';
import { type ContextSupplier, repositorySupplier, workspacePath } from '../context/supplier';
import type { WorkspaceFiles } from '../context/workspace-files';
import { datasetContextPolicy, workspaceContextFiles } from '../dataset/context-files';
import { NearDuplicates } from '../dataset/near-duplicates';

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
