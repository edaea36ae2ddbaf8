// The model worker thread: validates a model folder or builds its graph (checkpoint validation,
// weight hashing, graph build, quantization, the cache write), all synchronous work that would
// otherwise stall the language server's requests. One job per worker; the worker ends with it.
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { loadModelConfig } from '../model/config';
import { ModelFileError } from '../model/errors';
import { checkTokenizerFitsModel } from '../model/tokenizer';
import { prepareGraph } from '../runtime/prepare-graph';
import type { ModelWorkerJob, ModelWorkerMessage } from './model-worker-client';
import { validateModelFolder } from './validate-model';

const job = workerData as ModelWorkerJob;

/** The build's niceness (the fine-tune child's too): a busy CPU serves the server thread's keystrokes first. */
const WORKER_NICENESS = 10;

// On Linux (and macOS) pid 0 names the calling thread, so this lowers the worker, not the server.
try {
  setPriority(0, WORKER_NICENESS);
} catch {
  // a platform or sandbox that refuses it: the build runs at the server's priority
}
const send = (message: ModelWorkerMessage) => parentPort?.postMessage(message);

try {
  if (job.kind === 'validate') send({ type: 'done', result: validateModelFolder(job.path) });
  else {
    checkTokenizerFitsModel(job.modelDir, loadModelConfig(job.modelDir).vocabSize);
    send({ type: 'done', result: prepareGraph(job.modelDir, { ...job.options, log: (message) => send({ type: 'log', message }) }) });
  }
} catch (err) {
  const e = err as Error;
  send({
    type: 'error',
    error:
      err instanceof ModelFileError ? { name: e.name, message: e.message, file: err.file, problem: err.problem } : { name: e?.name ?? 'Error', message: e?.message ?? String(err) },
  });
}
