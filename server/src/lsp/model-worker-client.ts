// Runs model jobs (validating a folder, building a graph) in a worker thread and resolves to their
// result, so the language server's thread only creates the ORT session from the built file and keeps
// answering requests while a huge or hostile model is checked. A ModelFileError crosses back whole.
import { startWorker } from '../start-worker';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { ModelFileError } from '../model/errors';
import type { GraphPreparer, PreparedGraph, PrepareGraphOptions } from '../runtime/prepare-graph';
import type { ValidateModelResult } from '../protocol';

/** The cloneable part of PrepareGraphOptions (the log function stays in this thread). */
export type WorkerPrepareOptions = Omit<PrepareGraphOptions, 'log'>;

export type ModelWorkerJob = { kind: 'validate'; path: string } | { kind: 'prepare'; modelDir: string; options: WorkerPrepareOptions };

export type ModelWorkerMessage =
  | { type: 'log'; message: string }
  | { type: 'done'; result: unknown }
  | { type: 'error'; error: { name: string; message: string; file?: string; problem?: string } };

/** dist/model-worker.js next to the bundle; else the TypeScript source (tests). */
function startModelWorker(job: ModelWorkerJob): Worker {
  return startWorker({ bundled: join(__dirname, 'model-worker.js'), source: join(__dirname, 'model-worker.ts') }, job);
}

function toError(e: { name: string; message: string; file?: string; problem?: string }): Error {
  if (e.name === 'ModelFileError' && e.file !== undefined && e.problem !== undefined) return new ModelFileError(e.file, e.problem);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/**
 * Runs one job in a fresh worker. The worker is never terminated early: Node 20 can abort the whole
 * process when a worker is terminated while still evaluating its entry (see dataset/tokenize-pool.ts);
 * a superseded job simply finishes and its result is dropped by the caller.
 */
export function runModelJob<T>(job: ModelWorkerJob, log?: (message: string) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const worker = startModelWorker(job);
    worker.on('message', (m: ModelWorkerMessage) => {
      if (m.type === 'log') log?.(m.message);
      else if (m.type === 'done') {
        settled = true;
        resolve(m.result as T);
      } else {
        settled = true;
        reject(toError(m.error));
      }
    });
    // a worker that runs out of memory ends with ERR_WORKER_OUT_OF_MEMORY here; the server lives on
    worker.on('error', (err) => {
      if (!settled) reject(new Error(`the model worker failed: ${err.message}`));
      settled = true;
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`the model worker ended (exit code ${code}) before it answered`));
      settled = true;
    });
  });
}

/** Validates and builds the graph in a worker (LoadModelOptions.prepare). */
export const prepareGraphInWorker: GraphPreparer = (modelDir, options) => {
  const { attention, weightType, quantization, cacheDir, adapterDir, cacheLimitBytes, keepGraphDirs } = options;
  const cloneable: WorkerPrepareOptions = { attention, weightType, quantization, cacheDir, adapterDir, cacheLimitBytes, keepGraphDirs };
  return runModelJob<PreparedGraph>({ kind: 'prepare', modelDir, options: cloneable }, options.log);
};

/** kiln/validateModel off the server's thread; a worker that fails still gives an answer. */
export function validateModelInWorker(path: string): Promise<ValidateModelResult> {
  return runModelJob<ValidateModelResult>({ kind: 'validate', path }).catch((err: unknown) => ({ ok: false, message: `${path}: ${(err as Error).message}` }));
}
