// The context block of the fine-tune's examples: for a share of the documents, snippets of the
// workspace's other files — the declarations the document imports and the windows most like the
// lines before each example's cursor (a pool gathered here, ranked per example in cursor-blocks.ts) —
// chosen with the same sources, ranking and block format the editor uses, so the model trains on
// prompts shaped like those it completes. The files are the dataset's own (already read, filtered and
// scrubbed); a document's near-duplicates never give it context, nor held-out files a training document.
import { posix } from 'node:path';
import { CONTEXT_SHARE } from '../context/budget';
import { RepositoryContext } from '../context/repository-context';
import type { ContextSourceName } from '../context/snippet';
import type { DocumentContext } from './document-examples';
import { NearDuplicates } from './near-duplicates';
import { keyedRandom } from './random';

export interface ExampleContextOptions {
  /** The editor's kiln.context.sources (edits and views do not exist in a dataset: imports and similar count). */
  sources: readonly ContextSourceName[];
  /** The editor's kiln.context.maxTokens; a sequence gives the block at most CONTEXT_SHARE of itself. */
  maxTokens: number;
  /** Share of documents whose examples get a block (the rest teach completing without one). */
  rate: number;
  /**
   * `root` (default): the dataset is one repository. `folders`: each top-level folder is a
   * repository of its own, named after it (a corpus of packages, `<source>/…`): snippets then come
   * only from a document's own package, as they would in that package's editor.
   */
  repositories?: 'root' | 'folders';
}

/** The top-level folder of a dataset path ('' for a file at the root). */
function topFolder(path: string): string {
  const slash = path.indexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** Per file (in order): its context, or undefined when it was not drawn or nothing was found. */
export async function chooseExampleContexts(
  files: readonly { path: string; text: string }[],
  options: ExampleContextOptions,
  run: { root: string; seqLen: number; seed: number; signal?: AbortSignal; heldOut?: ReadonlySet<string> },
): Promise<(DocumentContext | undefined)[]> {
  if (!(options.rate >= 0 && options.rate <= 1)) throw new RangeError(`the context rate must be in [0, 1], got ${options.rate}`);
  const maxTokens = Math.min(options.maxTokens, Math.floor(run.seqLen * CONTEXT_SHARE));
  if (options.rate === 0 || maxTokens <= 0 || options.sources.length === 0) return files.map(() => undefined);
  const rootName = posix.basename(run.root.split('\\').join('/'));
  // one repository at a time (the whole dataset, or each top-level folder): one index alive at once
  const groups = new Map<string, number[]>();
  for (const [i, f] of files.entries()) {
    const folder = options.repositories === 'folders' ? topFolder(f.path) : '';
    const members = groups.get(folder);
    if (members === undefined) groups.set(folder, [i]);
    else members.push(i);
  }
  const result: (DocumentContext | undefined)[] = files.map(() => undefined);
  for (const [folder, members] of groups) {
    const chosen = await contextsOfRepository(
      members.map((i) => files[i]!),
      folder === '' ? rootName : folder,
      { ...run, options, maxTokens },
    );
    for (const [k, i] of members.entries()) result[i] = chosen[k];
  }
  return result;
}

async function contextsOfRepository(
  files: readonly { path: string; text: string }[],
  repoName: string,
  run: { seed: number; signal?: AbortSignal; heldOut?: ReadonlySet<string>; options: ExampleContextOptions; maxTokens: number },
): Promise<(DocumentContext | undefined)[]> {
  const { options, maxTokens } = run;
  // the texts passed the dataset's rules already: admitted as they are
  const context = new RepositoryContext({ policy: { admit: (_path, text) => text }, idle: { quietMs: 0, sliceMs: 50 } });
  const duplicates = new NearDuplicates();
  try {
    for (const f of files) {
      context.openDocument(f.path, f.text);
      duplicates.note(f.path, f.text);
    }
    await context.settled();
    return files.map((f) => {
      run.signal?.throwIfAborted();
      if (keyedRandom(run.seed, `context\0${f.path}`)() >= options.rate) return undefined;
      // a training document never shows a held-out file: the evaluation after training scores those
      const training = run.heldOut !== undefined && !run.heldOut.has(f.path);
      const exclude = (p: string) => duplicates.isNearDuplicate(f.path, p) || (training && run.heldOut!.has(p));
      const { imports, similarPool } = context.documentContext({ path: f.path, text: f.text, sources: options.sources, exclude });
      if (imports.length === 0 && similarPool.length === 0) return undefined;
      return { repoName, snippets: imports, ...(similarPool.length === 0 ? {} : { similarPool }), maxTokens };
    });
  } finally {
    context.dispose();
  }
}
