// Tokenizing many documents on several threads. The tokenizer library runs in plain JavaScript on
// one thread (≈0.5 MB/s here), which made tokenizing the dominant wait of a large fine-tune's
// dataset phase (and of the n-gram baseline's corpus); each worker loads its own tokenizer from the
// same folder, and results are put back in document order, so the output is the same whatever the
// number of workers.
import { startWorker } from '../start-worker';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { FimTemplate } from '../model/fim';
import { type DocumentContext, type DocumentExamples, documentExamples } from './document-examples';
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
  sources: Source[];
}
/** Tells a worker to finish: it closes its port once it is idle. */
export interface TokenizeClose {
  type: 'close';
}
export type TokenizeReply = { batch: number; results: unknown[] } | { batch: number; error: string };

type Source = { path: string; text: string; context?: DocumentContext };

/** Below this much text, starting workers (each loads the tokenizer) costs more than it saves. */
const MIN_PARALLEL_CHARS = 2 * 2 ** 20;
/** Text per message to a worker: large enough to amortise the messaging, small enough to balance the load. */
const BATCH_CHARS = 256 * 2 ** 10;

export interface TokenizeRun {
  parallel?: ParallelTokenizing | undefined;
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

/** What a job makes of one document, in this thread or a worker. */
export function runJob(job: TokenizeJob, tokenizer: ExampleTokenizer, source: Source): unknown {
  if (job.kind === 'ids') return tokenizer.encode(source.text);
  const ctx: ExampleContext = { tokenizer, template: job.template, endId: job.endId, options: job.options };
  return documentExamples(source, ctx, job.seqLen, job.seed);
}

async function tokenizeAll(sources: readonly Source[], run: TokenizeRun, job: TokenizeJob, tokenizer: ExampleTokenizer): Promise<unknown[]> {
  const parallel = run.parallel;
  const chars = sources.reduce((sum, s) => sum + s.text.length, 0);
  const worthWorkers = parallel !== undefined && parallel.workers > 1 && chars >= (parallel.minParallelChars ?? MIN_PARALLEL_CHARS);
  const batches = worthWorkers ? batchesOf(sources, parallel.batchChars ?? BATCH_CHARS) : [];
  const workers = Math.min(parallel?.workers ?? 1, batches.length);
  if (!parallel || workers <= 1) {
    return sources.map((source, i) => {
      run.signal?.throwIfAborted();
      run.onProgress?.(i);
      return runJob(job, tokenizer, source);
    });
  }
  return onWorkers({ batches, documents: sources.length, workers, data: { tokenizerDir: parallel.tokenizerDir, job } }, run);
}

function batchesOf(sources: readonly Source[], batchChars: number): TokenizeBatch[] {
  const batches: TokenizeBatch[] = [];
  let current: Source[] = [];
  let chars = 0;
  for (const { path, text, context } of sources) {
    current.push(context === undefined ? { path, text } : { path, text, context });
    chars += text.length;
    if (chars >= batchChars) {
      batches.push({ type: 'batch', batch: batches.length, sources: current });
      current = [];
      chars = 0;
    }
  }
  if (current.length) batches.push({ type: 'batch', batch: batches.length, sources: current });
  return batches;
}

/** dist/dataset-worker.js next to the bundle; else the TypeScript source (tests). */
function startTokenizeWorker(data: TokenizeWorkerData): Worker {
  return startWorker({ bundled: join(__dirname, 'dataset-worker.js'), source: join(__dirname, 'tokenize-worker.ts') }, data);
}

/** The batches of `documents` documents, tokenized on `workers` threads started with `data`. */
interface WorkerJob {
  batches: TokenizeBatch[];
  documents: number;
  workers: number;
  data: TokenizeWorkerData;
}

function onWorkers({ batches, documents, workers: count, data }: WorkerJob, run: TokenizeRun): Promise<unknown[]> {
  const results: unknown[][] = new Array(batches.length);
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
      if (err === undefined) resolve(results.flat());
      else reject(err);
    };
    const onAbort = () => stop(run.signal?.reason ?? new Error('cancelled'));
    if (run.signal?.aborted) return onAbort();
    run.signal?.addEventListener('abort', onAbort, { once: true });
    const feed = (w: Worker) => {
      if (next < batches.length) w.postMessage(batches[next++]);
    };
    for (let i = 0; i < count; i++) {
      const w = startTokenizeWorker(data);
      pool.push(w);
      w.on('message', (reply: TokenizeReply) => {
        if ('error' in reply) return stop(new Error(`tokenizing failed: ${reply.error}`));
        results[reply.batch] = reply.results;
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
