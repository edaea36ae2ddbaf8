// The context block of the fine-tune's examples: for a share of the documents, snippets of the
// workspace's other files — the declarations the document imports and the windows most like the
// lines before each example's cursor — chosen by the editor's own RepositoryContext over the
// document's repository, asked at the example's cursor, so the model trains on the prompts it
// completes. The files are the dataset's own (already read, filtered and scrubbed); a document's
// near-duplicates never give it context, nor held-out files a training document.
//
// The plan (which documents, which repository) is drawn here; the repository's context is built
// where the documents are tokenized (a worker thread, or this one), because a cursor is known only
// once its piece is cut from the tokens.
import { posix } from 'node:path';
import { CONTEXT_SHARE } from '../context/budget';
import { memoized } from '../context/memo';
import { RepositoryContext } from '../context/repository-context';
import type { ContextSnippet, ContextSourceName } from '../context/snippet';
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

/** One repository's files and rules, as plain data: it travels to the tokenizing workers. */
export interface ContextRepository {
  /** The name its blocks give it (Qwen2.5-Coder's `<|repo_name|>`). */
  name: string;
  /** Every file of it in dataset order, each opened as the editor would open it. */
  files: { path: string; text: string }[];
  /** Its held-out files: never in a training document's block (the evaluation after training scores them). */
  heldOut: string[];
  sources: readonly ContextSourceName[];
  /** Tokens a block may take. */
  maxTokens: number;
}

/** Which documents get a block, and from which repository. */
export interface ExampleContextPlan {
  repositories: ContextRepository[];
  /** Per file (in order): its repository's index in `repositories`, or undefined when it was not drawn. */
  repositoryOf: (number | undefined)[];
}

/** The top-level folder of a dataset path ('' for a file at the root). */
function topFolder(path: string): string {
  const slash = path.indexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** Draws the documents whose examples get a block; a repository is kept only when one of its documents was drawn. */
export function planExampleContexts(
  files: readonly { path: string; text: string }[],
  options: ExampleContextOptions,
  run: { root: string; seqLen: number; seed: number; heldOut?: ReadonlySet<string> },
): ExampleContextPlan {
  if (!(options.rate >= 0 && options.rate <= 1)) throw new RangeError(`the context rate must be in [0, 1], got ${options.rate}`);
  const maxTokens = Math.min(options.maxTokens, Math.floor(run.seqLen * CONTEXT_SHARE));
  const plan: ExampleContextPlan = { repositories: [], repositoryOf: files.map(() => undefined) };
  if (options.rate === 0 || maxTokens <= 0 || options.sources.length === 0) return plan;
  const rootName = posix.basename(run.root.split('\\').join('/'));
  const groups = new Map<string, number[]>();
  for (const [i, f] of files.entries()) {
    const folder = options.repositories === 'folders' ? topFolder(f.path) : '';
    const members = groups.get(folder);
    if (members === undefined) groups.set(folder, [i]);
    else members.push(i);
  }
  for (const [folder, members] of groups) {
    const drawn = members.filter((i) => keyedRandom(run.seed, `context\0${files[i]!.path}`)() < options.rate);
    // a lone file has nothing to show itself: its pieces keep their whole length
    if (drawn.length === 0 || members.length < 2) continue;
    const id = plan.repositories.length;
    const repoFiles = members.map((i) => ({ path: files[i]!.path, text: files[i]!.text }));
    plan.repositories.push({
      name: folder === '' ? rootName : folder,
      files: repoFiles,
      heldOut: repoFiles.filter((f) => run.heldOut?.has(f.path) === true).map((f) => f.path),
      sources: options.sources,
      maxTokens,
    });
    for (const i of drawn) plan.repositoryOf[i] = id;
  }
  return plan;
}

/** One document's context: the candidates the editor would weigh at a cursor (char offset) in it. */
export interface CursorContext {
  repoName: string;
  maxTokens: number;
  candidatesAt(offset: number): ContextSnippet[];
}

/** A repository's context sources, built once and asked at every example's cursor of its documents. */
export class RepositoryCandidates {
  private constructor(
    private readonly repository: ContextRepository,
    private readonly context: RepositoryContext,
    private readonly duplicates: NearDuplicates,
    private readonly heldOut: ReadonlySet<string>,
  ) {}

  static async open(repository: ContextRepository): Promise<RepositoryCandidates> {
    // the texts passed the dataset's rules already: admitted as they are
    const context = new RepositoryContext({ policy: { admit: (_path, text) => text }, idle: { quietMs: 0, sliceMs: 50 } });
    const duplicates = new NearDuplicates();
    for (const f of repository.files) {
      context.openDocument(f.path, f.text);
      duplicates.note(f.path, f.text);
    }
    await context.settled();
    return new RepositoryCandidates(repository, context, duplicates, new Set(repository.heldOut));
  }

  forDocument(path: string, text: string): CursorContext {
    const training = !this.heldOut.has(path);
    // every cursor of the document asks about the same few files: each is judged once
    const exclude = memoized((p: string) => this.duplicates.isNearDuplicate(path, p) || (training && this.heldOut.has(p)));
    const { name, sources, maxTokens } = this.repository;
    return { repoName: name, maxTokens, candidatesAt: (offset) => this.context.candidates({ path, text, offset, sources, exclude }) };
  }

  dispose(): void {
    this.context.dispose();
  }
}
