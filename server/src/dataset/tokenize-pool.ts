// Tokenizing many documents on several threads. The tokenizer library runs in plain JavaScript on
// one thread (≈0.5 MB/s here), which made tokenizing the dominant wait of a large fine-tune's
// dataset phase (and of the n-gram baseline's corpus); each worker loads its own tokenizer from the
// same folder, and results are put back in document order, so the output is the same whatever the
// number of workers. Documents whose examples carry a context block travel with their repository:
// a worker builds the repository's context once (ContextRepository, example-context.ts) and asks it
// at each example's cursor.
import { startWorker } from '../start-worker';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { FimTemplate } from '../model/fim';
import { type DocumentExamples, documentExamples } from './document-examples';
import { type ContextRepository, RepositoryCandidates } from './example-context';
import type { ExampleContext, ExampleTokenizer, FimOptions } from './fim-transform';

export interface ParallelTokenizing {
  /** The folder the tokenizer in use was loaded from: each worker loads its own copy. */
  tokenizerDir: string;
  /** Worker threads; 1 tokenizes in the calling thread. */
  workers: number;
  /** Less text than this is tokenized in the calling thread (default MIN_PARALLEL_CHARS). */
  minParallelChars?: number;
  /** Text per message to a worker (default BATCH_CHARS). */
  batchChars?: number;
}

/** What a worker makes of each document: its training examples, or just its token ids. */
export type TokenizeJob = { kind: 'examples'; template: FimTemplate | undefined; endId: number; options: FimOptions; seqLen: number; seed: number } | { kind: 'ids' };
export interface TokenizeWorkerData {
  tokenizerDir: string;
  job: TokenizeJob;
}
export interface TokenizeBatch {
  type: 'batch';
  batch: number;
  /** The repository its documents' blocks come from (the last one sent to the worker); undefined when none has a block. */
  repository?: number;
  sources: Source[];
}
/** The repository the next batches draw their blocks from; it replaces the worker's last one. */
export interface TokenizeRepository {
  type: 'repository';
  id: number;
  repository: ContextRepository;
}
/** Tells a worker to finish: it closes its port once it is idle. */
export interface TokenizeClose {
  type: 'close';
}
export type TokenizeReply = { batch: number; results: unknown[] } | { batch: number; error: string };

/** `repository`: the index, in the run's repositories, of the one its examples' blocks come from. */
type Source = { path: string; text: string; repository?: number };

/** Below this much text, starting workers (each loads the tokenizer) costs more than it saves. */
const MIN_PARALLEL_CHARS = 2 * 2 ** 20;
/** Text per message to a worker: large enough to amortise the messaging, small enough to balance the load. */
const BATCH_CHARS = 256 * 2 ** 10;

export interface TokenizeRun {
  parallel?: ParallelTokenizing | undefined;
  /** The repositories the sources' `repository` indexes. */
  repositories?: readonly ContextRepository[];
  signal?: AbortSignal | undefined;
  /** Documents finished so far. */
  onProgress?: (done: number) => void;
}

/** Every document's training examples, in document order. */
export function tokenizeDocuments(sources: readonly Source[], ctx: ExampleContext, run: TokenizeRun & { seqLen: number; seed: number }): Promise<DocumentExamples[]> {
  const job: TokenizeJob = { kind: 'examples', template: ctx.template, endId: ctx.endId, options: ctx.options, seqLen: run.seqLen, seed: run.seed };
  return tokenizeAll(sources, run, job, ctx.tokenizer) as Promise<DocumentExamples[]>;
}

/** Every document's token ids, in document order. */
export function encodeDocuments(sources: readonly Source[], tokenizer: ExampleTokenizer, run: TokenizeRun): Promise<number[][]> {
  return tokenizeAll(sources, run, { kind: 'ids' }, tokenizer) as Promise<number[][]>;
}

/** What a job makes of one document, in this thread or a worker; `repository`: the context of the source's repository. */
export function runJob(job: TokenizeJob, tokenizer: ExampleTokenizer, source: Source, repository?: RepositoryCandidates): unknown {
  if (job.kind === 'ids') return tokenizer.encode(source.text);
  const ctx: ExampleContext = { tokenizer, template: job.template, endId: job.endId, options: job.options };
  if (source.repository === undefined) return documentExamples({ path: source.path, text: source.text }, ctx, job.seqLen, job.seed);
  if (repository === undefined) throw new Error(`${source.path}: its repository's context is missing`);
  return documentExamples({ path: source.path, text: source.text, context: repository.forDocument(source.path, source.text) }, ctx, job.seqLen, job.seed);
}

async function tokenizeAll(sources: readonly Source[], run: TokenizeRun, job: TokenizeJob, tokenizer: ExampleTokenizer): Promise<unknown[]> {
  const parallel = run.parallel;
  const chars = sources.reduce((sum, s) => sum + s.text.length, 0);
  const worthWorkers = parallel !== undefined && parallel.workers > 1 && chars >= (parallel.minParallelChars ?? MIN_PARALLEL_CHARS);
  const batches = worthWorkers ? batchesOf(sources, parallel.batchChars ?? BATCH_CHARS) : [];
  const workers = Math.min(parallel?.workers ?? 1, batches.length);
  if (!parallel || workers <= 1) return inThisThread(sources, run, job, tokenizer);
  const repositories = run.repositories ?? [];
  return onWorkers({ batches, documents: sources.length, workers, repositories, data: { tokenizerDir: parallel.tokenizerDir, job } }, run);
}

/** Every source in order; a repository's context is built before its first document and dropped after its last. */
async function inThisThread(sources: readonly Source[], run: TokenizeRun, job: TokenizeJob, tokenizer: ExampleTokenizer): Promise<unknown[]> {
  const lastUse = new Map<number, number>();
  for (const [i, s] of sources.entries()) if (s.repository !== undefined) lastUse.set(s.repository, i);
  const open = new Map<number, RepositoryCandidates>();
  try {
    const results: unknown[] = [];
    for (const [i, source] of sources.entries()) {
      run.signal?.throwIfAborted();
      run.onProgress?.(i);
      let repository: RepositoryCandidates | undefined;
      if (source.repository !== undefined) {
        repository = open.get(source.repository);
        if (repository === undefined) {
          repository = await RepositoryCandidates.open(repositoryAt(run.repositories, source.repository));
          open.set(source.repository, repository);
        }
      }
      results.push(runJob(job, tokenizer, source, repository));
      if (source.repository !== undefined && lastUse.get(source.repository) === i) {
        repository?.dispose();
        open.delete(source.repository);
      }
    }
    return results;
  } finally {
    for (const r of open.values()) r.dispose();
  }
}

function repositoryAt(repositories: readonly ContextRepository[] | undefined, id: number): ContextRepository {
  const repository = repositories?.[id];
  if (repository === undefined) throw new Error(`a document names context repository ${id}, which the run does not have`);
  return repository;
}

/** A batch, and where its documents sit in the run's order. */
interface PlacedBatch {
  message: TokenizeBatch;
  indices: number[];
}

/**
 * Batches of about `batchChars` of text; a batch's documents share one repository (or none), and a
 * repository's batches come one after another, so each worker builds a repository's context once.
 */
function batchesOf(sources: readonly Source[], batchChars: number): PlacedBatch[] {
  const order = sources.map((_, i) => i).sort((a, b) => (sources[a]!.repository ?? -1) - (sources[b]!.repository ?? -1) || a - b);
  const batches: PlacedBatch[] = [];
  let current: PlacedBatch | undefined;
  let chars = 0;
  for (const i of order) {
    const { path, text, repository } = sources[i]!;
    if (current !== undefined && (chars >= batchChars || current.message.repository !== repository)) {
      batches.push(current);
      current = undefined;
    }
    if (current === undefined) {
      current = { message: { type: 'batch', batch: batches.length, ...(repository === undefined ? {} : { repository }), sources: [] }, indices: [] };
      chars = 0;
    }
    current.message.sources.push(repository === undefined ? { path, text } : { path, text, repository });
    current.indices.push(i);
    chars += text.length;
  }
  if (current !== undefined) batches.push(current);
  return batches;
}

/** dist/dataset-worker.js next to the bundle; else the TypeScript source (tests). */
function startTokenizeWorker(data: TokenizeWorkerData): Worker {
  return startWorker({ bundled: join(__dirname, 'dataset-worker.js'), source: join(__dirname, 'tokenize-worker.ts') }, data);
}

/** The batches of `documents` documents, tokenized on `workers` threads started with `data`. */
interface WorkerJob {
  batches: PlacedBatch[];
  documents: number;
  workers: number;
  repositories: readonly ContextRepository[];
  data: TokenizeWorkerData;
}

function onWorkers({ batches, documents, workers: count, repositories, data }: WorkerJob, run: TokenizeRun): Promise<unknown[]> {
  const results: unknown[] = new Array(documents);
  const pool: Worker[] = [];
  let next = 0;
  let finished = 0;
  let done = 0;
  return new Promise<unknown[]>((resolve, reject) => {
    let settled = false;
    const stop = (err: unknown) => {
      if (settled) return;
      settled = true;
      run.signal?.removeEventListener('abort', onAbort);
      // Workers are asked to close, not terminated: Node 20 aborts the whole process when a worker is
      // terminated while it is still evaluating its entry script (seen in the cancel test). A worker
      // still loading its tokenizer reads the request once it is ready; a busy one after its batch.
      for (const w of pool) w.postMessage({ type: 'close' } satisfies TokenizeClose);
      if (err === undefined) resolve(results);
      else reject(err);
    };
    const onAbort = () => stop(run.signal?.reason ?? new Error('cancelled'));
    if (run.signal?.aborted) return onAbort();
    run.signal?.addEventListener('abort', onAbort, { once: true });
    // the repository each worker was sent last: a batch from another one sends its repository first
    const loaded = new Map<Worker, number>();
    const feed = (w: Worker) => {
      if (next >= batches.length) return;
      const { message } = batches[next++]!;
      if (message.repository !== undefined && loaded.get(w) !== message.repository) {
        try {
          w.postMessage({ type: 'repository', id: message.repository, repository: repositoryAt(repositories, message.repository) } satisfies TokenizeRepository);
        } catch (err) {
          return stop(err);
        }
        loaded.set(w, message.repository);
      }
      w.postMessage(message);
    };
    for (let i = 0; i < count; i++) {
      const w = startTokenizeWorker(data);
      pool.push(w);
      w.on('message', (reply: TokenizeReply) => {
        if ('error' in reply) return stop(new Error(`tokenizing failed: ${reply.error}`));
        const { indices } = batches[reply.batch]!;
        for (const [k, result] of reply.results.entries()) results[indices[k]!] = result;
        done += reply.results.length;
        run.onProgress?.(done);
        if (++finished === batches.length) return stop(undefined);
        feed(w);
      });
      w.on('error', (err) => stop(new Error(`a tokenizing worker failed: ${err.message}`)));
      w.on('exit', (code) => stop(new Error(`a tokenizing worker exited (code ${code}) with ${documents - done} documents left`)));
      feed(w);
    }
  });
}
